// Tests for the wire encoding: round trips, and a kMalformed naming the field for every bad frame.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "runrec/bus/message.hpp"
#include "test_engine.hpp"

using namespace runrec::bus;
using runrec::bus::test::codeIs;

namespace {

// decode(frame) must fail with kMalformed and a message containing `needle`.
void expectMalformed(const std::string& frame, const std::string& needle) {
  CAPTURE(frame);
  auto r = decode(frame);
  REQUIRE_FALSE(r.has_value());
  CHECK(codeIs(r.error(), ErrorCode::kMalformed));
  CAPTURE(r.error().message);
  CHECK(r.error().message.rfind("bus message: ", 0) == 0);
  CHECK(r.error().message.find(needle) != std::string::npos);
}

}  // namespace

TEST_CASE("EveryMessageTypeRoundTrips") {
  for (auto type : {MessageType::kOpen, MessageType::kCommand, MessageType::kEnd,
                    MessageType::kOpened, MessageType::kOutcome, MessageType::kFinished,
                    MessageType::kRefused}) {
    Message m{type, "run-\"7\"\n\xc3\xa9", 12,
              {{"commandType", "aspirate"}, {"params", {{"volume", 10.5}, {"wells", {"A1", "B2"}}}}}};
    auto frame = encode(m);
    CAPTURE(frame);
    auto d = decode(frame);
    REQUIRE(d.has_value());
    CHECK(toString(d->type) == std::string(toString(type)));
    CHECK(d->runId == m.runId);
    CHECK(d->seq == 12);
    CHECK(d->body == m.body);
  }
}

TEST_CASE("EncodeWritesTheDocumentedEnvelope") {
  auto frame = encode(Message{MessageType::kCommand, "r1", 12, {{"commandType", "home"}}});
  CHECK(frame == R"({"v":1,"type":"command","runId":"r1","seq":12,"body":{"commandType":"home"}})");
  auto j = nlohmann::json::parse(frame);
  CHECK(j.size() == 5);
}

TEST_CASE("EncodeSendsANullBodyAsAnEmptyObject") {
  Message m{MessageType::kEnd, "r", 3, nullptr};
  auto d = decode(encode(m));
  REQUIRE(d.has_value());
  CHECK(d->body == nlohmann::json::object());
}

TEST_CASE("EncodeNeverThrowsOnInvalidUtf8") {
  Message m{MessageType::kOutcome, "bad\xff", 1, {{"message", std::string("x\xfe")}}};
  std::string frame;
  CHECK_NOTHROW(frame = encode(m));
  CHECK(decode(frame).has_value());
}

TEST_CASE("LargestSeqRoundTrips") {
  Message m{MessageType::kCommand, "r", UINT64_MAX, nlohmann::json::object()};
  auto d = decode(encode(m));
  REQUIRE(d.has_value());
  CHECK(d->seq == UINT64_MAX);
}

TEST_CASE("TypeNamesAreTheWireNames") {
  CHECK(std::string(toString(MessageType::kOpen)) == "open");
  CHECK(std::string(toString(MessageType::kCommand)) == "command");
  CHECK(std::string(toString(MessageType::kEnd)) == "end");
  CHECK(std::string(toString(MessageType::kOpened)) == "opened");
  CHECK(std::string(toString(MessageType::kOutcome)) == "outcome");
  CHECK(std::string(toString(MessageType::kFinished)) == "finished");
  CHECK(std::string(toString(MessageType::kRefused)) == "refused");
  CHECK(std::string(toString(ErrorCode::kMalformed)) == "malformed");
}

TEST_CASE("MalformedFramesNameTheField") {
  SUBCASE("not JSON") {
    expectMalformed("", "not JSON");
    expectMalformed("{\"v\":1,", "not JSON");
    expectMalformed("hello", "not JSON");
    expectMalformed("{\"v\":1} trailing", "not JSON");
  }
  SUBCASE("not an object") {
    expectMalformed("[1,2]", "expected a JSON object, got array");
    expectMalformed("\"command\"", "expected a JSON object, got string");
    expectMalformed("null", "expected a JSON object, got null");
  }
  const std::string tail = R"("runId":"r","seq":1,"body":{})";
  SUBCASE("version") {
    expectMalformed(R"({"type":"command",)" + tail + "}", R"("v": missing)");
    expectMalformed(R"({"v":"1","type":"command",)" + tail + "}",
                    R"("v": expected the integer 1, got "1")");
    expectMalformed(R"({"v":1.0,"type":"command",)" + tail + "}", R"("v": expected the integer 1)");
    expectMalformed(R"({"v":2,"type":"command",)" + tail + "}", R"("v": unsupported version 2)");
  }
  SUBCASE("type") {
    expectMalformed(R"({"v":1,)" + tail + "}", R"("type": missing)");
    expectMalformed(R"({"v":1,"type":7,)" + tail + "}", R"("type": expected a string, got 7)");
    expectMalformed(R"({"v":1,"type":"launch",)" + tail + "}",
                    R"("type": unknown message type "launch")");
    expectMalformed(R"({"v":1,"type":"Command",)" + tail + "}", R"("type": unknown message type)");
  }
  SUBCASE("runId") {
    expectMalformed(R"({"v":1,"type":"command","seq":1,"body":{}})", R"("runId": missing)");
    expectMalformed(R"({"v":1,"type":"command","runId":null,"seq":1,"body":{}})",
                    R"("runId": expected a string, got null)");
    expectMalformed(R"({"v":1,"type":"command","runId":5,"seq":1,"body":{}})",
                    R"("runId": expected a string, got 5)");
  }
  SUBCASE("seq") {
    const std::string head = R"({"v":1,"type":"command","runId":"r",)";
    expectMalformed(head + R"("body":{}})", R"("seq": missing)");
    expectMalformed(head + R"("seq":"x","body":{}})",
                    R"(bus message: "seq": expected a non-negative integer, got "x")");
    expectMalformed(head + R"("seq":-1,"body":{}})",
                    R"("seq": expected a non-negative integer, got -1)");
    expectMalformed(head + R"("seq":1.5,"body":{}})",
                    R"("seq": expected a non-negative integer, got 1.5)");
    expectMalformed(head + R"("seq":true,"body":{}})",
                    R"("seq": expected a non-negative integer, got true)");
    expectMalformed(head + R"("seq":18446744073709551616,"body":{}})", R"("seq": expected)");
  }
  SUBCASE("body") {
    const std::string head = R"({"v":1,"type":"command","runId":"r","seq":1)";
    expectMalformed(head + "}", R"("body": missing)");
    expectMalformed(head + R"(,"body":[1]})", R"("body": expected an object, got [1])");
    expectMalformed(head + R"(,"body":null})", R"("body": expected an object, got null)");
  }
  SUBCASE("unknown field") {
    expectMalformed(R"({"v":1,"type":"command","runId":"r","seq":1,"body":{},"extra":0})",
                    R"(unknown field "extra")");
  }
  SUBCASE("long values are shortened in the message") {
    std::string big(500, 'x');
    auto r = decode(R"({"v":1,"type":"command","runId":"r","seq":")" + big + R"(","body":{}})");
    REQUIRE_FALSE(r);
    CHECK(r.error().message.size() < 200);
  }
}

TEST_CASE("EncodeAndDecodeAreFast") {
  // A typical command: the hot path of a run. Target: well above 100k messages/s each way.
  Message m{MessageType::kCommand, "3f2c9a1e-run", 1,
            {{"commandType", "aspirate"},
             {"params",
              {{"pipetteId", "pipette-1"},
               {"labwareId", "plate-2"},
               {"wellName", "H12"},
               {"volume", 50.0},
               {"flowRate", 92.86},
               {"wellLocation", {{"origin", "bottom"}, {"offset", {{"x", 0}, {"y", 0}, {"z", 1}}}}}}},
             {"key", "cmd-1"}}};
  constexpr int kCount = 50'000;
  using Clock = std::chrono::steady_clock;
  std::vector<std::string> frames;
  frames.reserve(kCount);
  auto t0 = Clock::now();
  for (int i = 0; i < kCount; ++i) {
    m.seq = static_cast<std::uint64_t>(i + 1);
    frames.push_back(encode(m));
  }
  auto t1 = Clock::now();
  std::uint64_t sum = 0;
  for (const auto& f : frames) {
    auto d = decode(f);
    if (d) sum += d->seq;
  }
  auto t2 = Clock::now();
  CHECK(sum == std::uint64_t{kCount} * (kCount + 1) / 2);
  double encodeRate = kCount / std::chrono::duration<double>(t1 - t0).count();
  double decodeRate = kCount / std::chrono::duration<double>(t2 - t1).count();
  MESSAGE("encode " << static_cast<long>(encodeRate) << " msg/s, decode "
                    << static_cast<long>(decodeRate) << " msg/s (" << frames[0].size()
                    << " bytes)");
  CHECK(encodeRate > 100'000);
  CHECK(decodeRate > 100'000);
}
