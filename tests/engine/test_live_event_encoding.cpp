// The engine encodes each event's payload once and builds the live-event body around it:
// that body must be exactly what bus::encodeEvent writes for the same event.
#include <doctest/doctest.h>

#include "runrec/bus/events.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/engine/history.hpp"

using nlohmann::json;
using runrec::engine::Event;

TEST_CASE("the live-event body built around the encoded payload is byte for byte bus::encodeEvent") {
  std::vector<Event> events = {
      {"3f2a", 1, "runCreated", "2026-11-25T21:47:16.123456Z", "", {{"protocol", {{"name", "p"}}}, {"robot", "sim"}}},
      {"3f2a", 7, "commandStarted", "2026-11-25T21:47:16.000001Z", "c3",
       {{"commandId", "c3"}, {"index", 3}, {"params", {{"volume", 10.5}, {"wellName", "A1"}}}}},
      {"3f2a", 8, "commandFailed", "2026-11-25T21:47:16.000002Z", "c\"3\\\n",
       {{"error", {{"message", "caf\xc3\xa9 \x01 \xff"}}}}},
      {"run \xe2\x9c\x93", 9, "runFinished", "ts", "", json::object()},
  };
  for (const auto& e : events) {
    std::string payload = e.payload.dump(-1, ' ', false, json::error_handler_t::replace);
    CHECK(runrec::engine::encodeLiveEvent(e, payload) == runrec::bus::encodeEvent(runrec::engine::toRunEvent(e)));
  }
}

TEST_CASE("nowTimestamp is ISO 8601 UTC with microseconds and never goes back within a second") {
  std::string a = runrec::engine::nowTimestamp();
  REQUIRE(a.size() == 27);
  CHECK(a[4] == '-');
  CHECK(a[10] == 'T');
  CHECK(a[19] == '.');
  CHECK(a.back() == 'Z');
  std::string b = runrec::engine::nowTimestamp();
  CHECK(b >= a);
}
