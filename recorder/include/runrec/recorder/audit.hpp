// `runrec audit`: what a recorded run did, for a person or an auditor — timeline, time per
// command type, tips, liquids, errors and control actions, fingerprint (JSON shape in
// docs/recorder.md) — as JSON, plain text, or one self-contained HTML page.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "runrec/engine/event_log.hpp"

namespace runrec::recorder {

// The audit of a run, computed from its events with the engine's fold.
engine::Result<nlohmann::json> auditRun(engine::EventLog& log, const std::string& runId);

std::string auditText(const nlohmann::json& audit);
// One HTML file, no external assets: inline CSS, SVG timeline chart and deck map. Every
// number that is also in the JSON audit carries a data-audit="<json pointer>" attribute.
std::string auditHtml(const nlohmann::json& audit);

}  // namespace runrec::recorder
