// Reading recorded runs: summaries and command tables, for `runrec runs` and `runrec show`
// (JSON shapes in docs/cli-json.md). Replay and audit build on these.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "runrec/engine/event_log.hpp"

namespace runrec::recorder {

template <class T>
using Result = engine::Result<T>;

// One run's summary without folding its command events (cheap for long runs).
Result<nlohmann::json> runSummary(engine::EventLog& log, const std::string& runId);

// Summaries of the runs in the log, newest first; at most `limit` (-1: all).
Result<nlohmann::json> listRuns(engine::EventLog& log, int limit = -1);

// A run's summary plus `commands` (each: id, commandType, intent, params, status,
// startedAt, completedAt, durationMs, result, error) and, if asked, the folded `state`.
Result<nlohmann::json> runDetail(engine::EventLog& log, const std::string& runId, bool withState = false);

// The folded state right after event `seq` (`runrec state RUN --at SEQ`): {runId, seq,
// event: {seq, type, ts, commandId}, state: engine::toJson(fold(events 1..seq)), foldIssues}.
// kInvalid when seq is not in 1..last.
Result<nlohmann::json> stateAt(engine::EventLog& log, const std::string& runId, std::int64_t seq);

}  // namespace runrec::recorder
