// `runrec export`: a run's commands or events in formats other tools read (docs/recorder.md).
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "runrec/engine/event_log.hpp"

namespace runrec::recorder {

enum class ExportFormat {
  kCommandsJson,  // Opentrons robot-server's run commands: {"data": [command records], "meta", "links"}
  kCsv,           // one row per command, RFC 4180
  kNdjson,        // the raw event stream, one event per line, each with its fingerprint chain hash
};
std::optional<ExportFormat> parseExportFormat(std::string_view name);

engine::Status exportRun(engine::EventLog& log, const std::string& runId, ExportFormat format, std::ostream& out);

// RFC 4180: quoted (doubling quotes) when the field has a comma, quote, CR or LF.
std::string csvField(std::string_view text);

}  // namespace runrec::recorder
