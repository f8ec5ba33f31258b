// Opentrons JSON protocols (schemas v6, v7, v8): loading, validation, normalisation.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
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
  std::string message;  // e.g. `commands[12].params.volume: expected a number, got "ten"`
};
template <class T>
using Result = tl::expected<T, Error>;

// A validated protocol, with its commands normalised to the v8 shapes the engine takes:
// - v6 loadPipette gets `pipetteName` from the `pipettes` map; v6 loadLabware gets
//   `loadName`, `namespace`, `version` (and `displayName`) from the `labware` map and
//   its definitionId; v6 loadModule gets `model` from the `modules` map;
// - v6 `delay` becomes `waitForDuration` ({"seconds"}) or `waitForResume` ({"message"});
// - every command is {"commandType", "params", "key"?} with nothing else.
struct Protocol {
  std::filesystem::path path;  // empty when parsed from text
  std::string text;            // the file as read
  std::string sha256;          // hex digest of `text`
  int schemaVersion = 0;
  nlohmann::json metadata = nlohmann::json::object();
  nlohmann::json robot = nlohmann::json::object();
  nlohmann::json liquids = nlohmann::json::object();
  // URI ("namespace/loadName/version") -> definition, exactly as in the file.
  std::map<std::string, nlohmann::json> labwareDefinitions;
  std::vector<nlohmann::json> commands;

  std::string name() const;  // metadata.protocolName, else the file name
};

// Reads and validates a file. Validation happens before anything is sent or recorded.
Result<Protocol> loadProtocol(const std::filesystem::path& path);
// Same, from text; `name` is used in messages in place of a path.
Result<Protocol> parseProtocol(std::string text, const std::string& name);

// The command types this runner accepts.
const std::vector<std::string>& supportedCommandTypes();

}  // namespace runrec::runner
