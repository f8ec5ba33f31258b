// Opening a test's event log, and registering a run in it, with the failure named.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "runrec/engine/event_log.hpp"

namespace runrec::test {

inline std::unique_ptr<engine::EventLog> openLog(const std::filesystem::path& p, engine::LogOptions options = {}) {
  auto log = engine::EventLog::open(p, options);
  REQUIRE_MESSAGE(log.has_value(), (log ? "" : log.error().message));
  return std::move(*log);
}

// Registers run `id` (protocol "test protocol", sha "abc123", robot "sim") in its own commit.
inline void createRun(engine::EventLog& log, const std::string& id) {
  REQUIRE(log.begin());
  REQUIRE(log.createRun({id, engine::nowTimestamp(), "test protocol", "abc123", "sim"}, "p.json", "{}"));
  REQUIRE(log.commit());
}

}  // namespace runrec::test
