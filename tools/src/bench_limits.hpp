// The limits the pipeline is measured against: raw SQLite appends with the log's own
// schema, settings and commit pattern, and raw ZeroMQ PUSH/PULL at the bus's message size.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace runrec::cli {

// One transaction per command holding two events (start + outcome), as the engine commits.
// Returns {"commandsPerSecond", "eventsPerSecond", "seconds"}.
nlohmann::json measureSqliteLimit(const std::string& dir, long commands, const std::string& sync);

// Messages of `bytes` bytes through an inproc PUSH/PULL pair with the given HWM, one way.
// Returns {"messagesPerSecond", "seconds", "bytes"}.
nlohmann::json measureZmqLimit(long messages, int bytes, int hwm);

}  // namespace runrec::cli
