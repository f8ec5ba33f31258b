// Opentrons JSON protocols (schemas v6, v7, v8): loading, validation, normalisation.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

namespace runrec::runner {

enum class ErrorCode {
  kIo,               // the file cannot be read
  kInvalidProtocol,  // the file is not a valid protocol; message names the JSON path
  kBus,              // the bus failed
  kRunFailed,        // the engine ended the run as failed/stopped
};
const char* toString(ErrorCode code);

struct Error {
  ErrorCode code;
  // For kInvalidProtocol: `<file>: <JSON path>: <problem>`, e.g.
  // `simple.json: commands[12].params.volume: expected a number, got "ten"`, or for a
  // syntax error `simple.json:3:14: invalid JSON: <reason>` (line:column, 1-based).
  // For kIo: `cannot read <path>: <OS reason>`. `<file>` is the path or the name given.
  std::string message;
};
template <class T>
using Result = tl::expected<T, Error>;

// A streamed protocol's normalised commands, written once while it was validated (private to
// protocol.cpp; see openProtocol).
struct CommandSpool;

// A validated protocol, with its commands normalised to the v8 shapes the engine takes:
// - v6 loadPipette gets `pipetteName` from the `pipettes` map; v6 loadLabware gets
//   `loadName`, `namespace`, `version` (and `displayName`) from the `labware` map and
//   its definitionId; v6 loadModule gets `model` from the `modules` map;
// - v6 `delay` becomes `waitForDuration` ({"seconds"}) or `waitForResume` ({"message"});
// - `pause` (any schema) becomes `waitForResume`;
// - every command is {"commandType", "params", "key"?} with nothing else (a command's
//   `intent`, and the `result` some v6 files carry, are dropped);
// - params hold only the parameters command-8.json defines for the type (unknown ones are
//   rejected), and every pipetteId/labwareId/moduleId/liquidId refers to something loaded by
//   an earlier command (labware "fixedTrash" always exists: the engine pre-loads it in slot 12).
// Load commands always carry their id (pipetteId, labwareId, moduleId).
struct Protocol {
  std::filesystem::path path;  // empty when parsed from text
  std::string source;          // the path, or the name given to parseProtocol (for messages)
  std::string text;            // the file as read (empty when streamed)
  std::string sha256;          // hex digest of the file's text
  int schemaVersion = 0;
  nlohmann::json metadata = nlohmann::json::object();
  nlohmann::json robot = nlohmann::json::object();
  nlohmann::json liquids = nlohmann::json::object();
  // URI ("namespace/loadName/version", computed from the definition) -> definition, exactly
  // as in the file. A file may key a definition by another id (Opentrons' own fixtures use
  // "example/plate/1" for "example/foo_8_plate_33ul/1"); the index here is always the URI,
  // which is what normalised loadLabware params name.
  std::map<std::string, nlohmann::json> labwareDefinitions;
  std::vector<nlohmann::json> commands;  // empty when streamed: see forEachCommand
  std::size_t commandCount = 0;
  // openProtocol: neither the text nor the commands are held; they are read from `path` again
  // when the protocol is run (memory stays flat however many commands the file has).
  bool streamed = false;
  // Streamed: the file's top level less its commands, as validated (forEachCommand checks
  // each command against it without parsing the rest of the file again).
  std::shared_ptr<const nlohmann::json> document;
  // Streamed: the normalised commands as openProtocol's validation emitted them, one compact
  // JSON text per line in an unnamed temporary file (nothing else can open or change it).
  // forEachCommand reads them from here instead of parsing and validating the file again.
  // Null when no temporary file could be written: commands are then validated again as sent.
  std::shared_ptr<const CommandSpool> spool;
  // Anomalies that are accepted but worth reporting (e.g. a definition keyed by an alias).
  std::vector<std::string> warnings;

  std::string name() const;  // metadata.protocolName, else the file stem (of path or source)
};

// Reads and validates a file. Validation happens before anything is sent or recorded.
Result<Protocol> loadProtocol(const std::filesystem::path& path);
// Same, from text; `name` is used in messages in place of a path.
Result<Protocol> parseProtocol(std::string text, const std::string& name);
// Validates a file as loadProtocol does (the same checks and messages, before anything is
// sent) without holding it: the file is read in pieces, one command at a time, and the
// result is `streamed` (no text, no commands). Each normalised command is written, as it is
// validated, to `spool`: an unnamed temporary file in $TMPDIR (else /var/tmp, else /tmp),
// about 130 bytes per seed command. Run it with forEachCommand.
Result<Protocol> openProtocol(const std::filesystem::path& path);

// Whether forEachCommand checks a streamed protocol's file before giving any command.
enum class FileCheck {
  kDigest,  // hash the file again; a different SHA-256 is refused (the default)
  // The caller has had the file's digest checked since openProtocol: runProtocol, after an
  // engine accepted the open (an engine given `textFile` stores that file only if its SHA-256
  // is the validated one, docs/wire-protocol.md). Only with a spool: without one the file is
  // read again and is always checked.
  kCheckedByEngine,
};

// Gives each normalised command to `visit`, in order, until it returns false. A streamed
// protocol's commands are read from its spool, so what is given is exactly what was
// validated, whatever happens to the file meanwhile; if the file's digest differs from the
// one validated, nothing is given (kInvalidProtocol "<file>: the file changed after it was
// validated; nothing was run"). Without a spool the file is read and validated again as it
// goes, and a change while it is being read is reported at the end (no invalid command is
// ever given).
Result<void> forEachCommand(const Protocol& protocol, const std::function<bool(nlohmann::json&)>& visit,
                            FileCheck check = FileCheck::kDigest);
// The same, giving each command as its JSON text: compact, exactly as nlohmann's dump()
// writes the normalised command (the body of a bus command message). The view is valid
// during the call only. The cheap way to send a streamed protocol: nothing is parsed.
Result<void> forEachCommandText(const Protocol& protocol, const std::function<bool(std::string_view)>& visit,
                                FileCheck check = FileCheck::kDigest);

// The command types this runner accepts (as written in files; `delay` is v6-only and
// normalised away, `pause` is normalised to `waitForResume`).
const std::vector<std::string>& supportedCommandTypes();

}  // namespace runrec::runner
