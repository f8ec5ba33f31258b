// Exports of a run: robot-server command records, CSV, the raw event stream.
#include "runrec/recorder/export.hpp"

#include "runrec/recorder/fingerprint.hpp"
#include "runrec/recorder/report.hpp"

#include "timestamps.hpp"

namespace runrec::recorder {

using nlohmann::json;

std::optional<ExportFormat> parseExportFormat(std::string_view name) {
  if (name == "commands-json") return ExportFormat::kCommandsJson;
  if (name == "csv") return ExportFormat::kCsv;
  if (name == "ndjson") return ExportFormat::kNdjson;
  return std::nullopt;
}

std::string csvField(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

namespace {

std::string cell(const json& j) {
  if (j.is_null()) return "";
  return csvField(j.is_string() ? j.get<std::string>() : j.dump());
}

// An Opentrons error occurrence from a recorded error.
json errorOccurrence(const json& c) {
  const json& e = c["error"];
  json info = json::object();  // robot-server's errorInfo is a map of strings
  if (e.contains("details") && e["details"].is_object())
    for (auto& [k, v] : e["details"].items()) info[k] = v.is_string() ? v.get<std::string>() : v.dump();
  std::string type = detail::text(e, "errorType", "GeneralError");
  return {{"id", c["id"].get<std::string>() + "-error"},
          {"createdAt", c["completedAt"]},
          {"isDefined", false},
          {"errorType", type},
          {"errorCode", type == "Hardware" ? "2000" : "4000"},
          {"detail", detail::text(e, "message")},
          {"errorInfo", info},
          {"wrappedErrors", json::array()}};
}

}  // namespace

namespace {

engine::Status exportRunImpl(engine::EventLog& log, const std::string& runId, ExportFormat format, std::ostream& out) {
  if (format == ExportFormat::kNdjson) {
    auto events = log.events(runId);
    if (!events) return tl::unexpected(events.error());
    auto fp = fingerprint(log, runId);
    if (!fp) return tl::unexpected(fp.error());
    for (size_t i = 0; i < events->size(); ++i) {
      const auto& e = (*events)[i];
      json line = {{"runId", e.runId}, {"seq", e.seq}, {"type", e.type}, {"ts", e.ts},
                   {"commandId", e.commandId.empty() ? json() : json(e.commandId)}, {"payload", e.payload}};
      if (i < fp->chain.size()) line["hash"] = fp->chain[i];
      out << line.dump() << "\n";
    }
    return {};
  }
  auto detail = runDetail(log, runId, false);
  if (!detail) return tl::unexpected(detail.error());
  const json& commands = (*detail)["commands"];
  if (format == ExportFormat::kCsv) {
    out << "index,id,key,commandType,intent,status,startedAt,completedAt,durationMs,pipetteId,labwareId,wellName,"
           "volume,errorType,errorMessage,params,result\r\n";
    for (auto& c : commands) {
      const json& p = c["params"];
      auto param = [&](const char* k) { return p.is_object() && p.contains(k) ? cell(p[k]) : std::string(); };
      const json& err = c["error"];
      out << cell(c["index"]) << ',' << cell(c["id"]) << ',' << cell(c["key"]) << ',' << cell(c["commandType"]) << ','
          << cell(c["intent"]) << ',' << cell(c["status"]) << ',' << cell(c["startedAt"]) << ','
          << cell(c["completedAt"]) << ',' << cell(c["durationMs"]) << ',' << param("pipetteId") << ','
          << param("labwareId") << ',' << param("wellName") << ',' << param("volume") << ','
          << (err.is_object() ? cell(err.value("errorType", json())) : "") << ','
          << (err.is_object() ? cell(err.value("message", json())) : "") << ',' << cell(p) << ','
          << cell(c["result"]) << "\r\n";
    }
    return {};
  }
  json data = json::array();
  for (auto& c : commands) {
    bool cleanup = c["intent"] == "cleanup";
    json r = {{"id", c["id"]},
              {"key", c["key"].is_string() ? c["key"] : c["id"]},
              {"commandType", c["commandType"]},
              {"createdAt", c["startedAt"]},
              {"startedAt", c["startedAt"]},
              {"completedAt", c["completedAt"]},
              {"status", c["status"]},
              {"params", c["params"]},
              {"result", c["result"]},
              {"error", c["error"].is_object() ? errorOccurrence(c) : json()},
              {"intent", cleanup ? "fixit" : "protocol"},
              {"notes", json::array()}};
    if (cleanup)
      r["notes"].push_back({{"noteKind", "runrecCleanup"},
                            {"shortMessage", "runrec cleanup after the run"},
                            {"longMessage", "Recorded by runrec with intent \"cleanup\": the post-run tip drop and "
                                            "home, after the protocol's commands."},
                            {"source", "runrec"}});
    data.push_back(std::move(r));
  }
  auto fp = fingerprint(log, runId);
  if (!fp) return tl::unexpected(fp.error());
  json doc = {{"data", data},
              {"meta", {{"cursor", 0}, {"totalLength", data.size()}, {"runId", runId},
                        {"fingerprint", fingerprintJson(*fp)}}},
              {"links", json::object()}};
  out << doc.dump(2) << "\n";
  return {};
}

}  // namespace

// Recorded JSON of an unexpected shape is reported, never thrown across the module boundary.
engine::Status exportRun(engine::EventLog& log, const std::string& runId, ExportFormat format, std::ostream& out) {
  try {
    return exportRunImpl(log, runId, format, out);
  } catch (const nlohmann::json::exception& e) {
    return engine::fail(engine::ErrorCode::kCorrupt, "run " + runId + ": malformed recorded data: " + e.what());
  }
}

}  // namespace runrec::recorder
