// Opentrons Python Protocol API v2 protocols, run unchanged in an embedded CPython
// (docs/python-protocols.md). The protocol's `run(protocol)` runs in the caller's thread;
// every API call that acts becomes a command on the bus, with the same credit window as a
// JSON protocol.
//
// Threading: one Python protocol at a time per process (the interpreter is process-wide and
// is never finalised). loadPythonProtocol/runPythonProtocol may be called from any thread,
// one call at a time.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "runrec/runner/runner.hpp"

namespace runrec::runner {

// Python protocols this build accepts: apiLevel 2.0 up to this.
constexpr int kMaxPythonApiMinor = 20;

struct PythonProtocol {
  std::filesystem::path path;  // empty when parsed from text
  std::string source;          // the path, or the name given (for messages)
  std::string text;            // the file as read
  std::string sha256;
  nlohmann::json metadata = nlohmann::json::object();      // literal `metadata` dict, if any
  nlohmann::json requirements = nlohmann::json::object();  // literal `requirements` dict, if any
  std::string apiLevel;                                    // "2.13" (requirements win over metadata)
  int apiMajor = 2, apiMinor = 0;
  std::string name() const;  // metadata.protocolName, else the file stem
};

// True if `path` names a Python protocol: a .py file, or (any other extension) text that
// does not start with '{' and defines `run`.
bool looksLikePython(const std::filesystem::path& path, const std::string& text);

// Reads and checks a Python protocol without running it: it compiles (a syntax error names
// file:line:column), it defines a top-level `run`, and its apiLevel is one this build runs.
// Errors are kIo or kInvalidProtocol.
Result<PythonProtocol> loadPythonProtocol(const std::filesystem::path& path);
Result<PythonProtocol> parsePythonProtocol(std::string text, const std::string& name);

struct PythonRunOptions : RunOptions {
  // Polled from a watcher thread while the protocol has made no API call for
  // `idlePoll`: return true if the run has been stopped (e.g. the engine's control status
  // says so). The protocol's Python code is then interrupted (RunStopped is raised in it).
  std::function<bool(const std::string& runId)> stopRequested;
  std::chrono::milliseconds idlePoll{200};
  // Extra folders of custom labware (loadName/version.json), as the engine's --labware-dir.
  std::vector<std::filesystem::path> labwareDirs;
};

// Opens a run, executes the protocol's `run(protocol)` (its API calls send commands), ends
// the run and returns the engine's summary. A Python exception or sys.exit ends the run
// failed (reason "runner: protocolError", the error carrying the traceback); a failed
// command raises in the protocol at a later API call and ends it failed.
Result<RunResult> runPythonProtocol(bus::CommandClient& client, const PythonProtocol& protocol,
                                    const PythonRunOptions& options = {});

// The `open` message body for a Python protocol.
nlohmann::json runDescription(const PythonProtocol& protocol);

// Where the project's `opentrons` package is found: $RUNREC_PYTHONPATH, else
// <executable>/../share/runrec/python (installed), else the source tree's runner/python.
std::filesystem::path pythonPackageDir();

}  // namespace runrec::runner
