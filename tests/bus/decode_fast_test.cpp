// decode() reads well-formed frames without building the envelope object, and gives anything
// else to the checked decoder. Both must accept exactly the same frames, with the same
// result: checked here on valid frames of every type and on every one-byte edit of them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "../../bus/src/wire.hpp"
#include "runrec/bus/message.hpp"

using namespace runrec::bus;

namespace {

// Same outcome from both decoders: both fail with the same message, or both give the same
// message (and replyTo).
bool sameDecode(const std::string& frame) {
  std::string replyFast = "unset", replyChecked = "unset";
  auto fast = detail::decodeFrame(frame, &replyFast);
  auto checked = detail::decodeFrameChecked(frame, &replyChecked);
  if (fast.has_value() != checked.has_value()) return false;
  if (!fast) return fast.error().message == checked.error().message;
  return fast->type == checked->type && fast->runId == checked->runId && fast->seq == checked->seq &&
         fast->body == checked->body && replyFast == replyChecked;
}

std::vector<std::string> validFrames() {
  const nlohmann::json command = {
      {"commandType", "touchTip"},
      {"key", "k\xc3\xa9\"\\\n"},
      {"params",
       {{"labwareId", "plate"}, {"radius", 0.5}, {"wellLocation", {{"offset", {{"x", 0}, {"z", -1}}}}}, {"v", {1, 2}}}}};
  std::vector<std::string> frames = {
      encode(Message{MessageType::kCommand, "0f3e2a1b-5c6d-4e7f-8a9b-0c1d2e3f4a5b", 12, command}),
      encode(Message{MessageType::kOutcome, "r1", 1, {{"status", "succeeded"}}}),
      encode(Message{MessageType::kEnd, "r\xe2\x82\xac", 3, nullptr}),
      detail::encodeFrame(Message{MessageType::kOpen, "", 1, {{"protocol", {{"name", "p"}}}}}, "runner-1"),
      // Members in another order, whitespace, escapes in keys, a byte order mark, a repeated
      // member (the checked decoder takes the last), replyTo where it is not allowed.
      " {\"body\" : {} , \"seq\":7,\"runId\":\"r\",\"type\":\"outcome\",\"v\":1 } \n",
      R"({"\u0076":1,"type":"command","runId":"r","seq":1,"body":{"a":[]}})",
      "\xef\xbb\xbf{\"v\":1,\"type\":\"end\",\"runId\":\"r\",\"seq\":1,\"body\":{}}",
      R"({"v":1,"type":"end","runId":"r","seq":1,"seq":2,"body":{}})",
      R"({"v":1,"type":"end","runId":"r","seq":1,"body":{},"replyTo":"x"})",
      R"({"v":1,"type":"open","runId":"","seq":1,"body":{},"replyTo":""})",
      R"({"v":1.0,"type":"end","runId":"r","seq":1,"body":{}})",
      R"({"v":1,"type":"end","runId":"r","seq":-0,"body":{}})",
      R"({"v":1,"type":"end","runId":"r","seq":18446744073709551616,"body":{}})",
  };
  return frames;
}

}  // namespace

TEST_CASE("TheFastDecoderAcceptsExactlyWhatTheCheckedDecoderAccepts") {
  std::size_t accepted = 0, compared = 0;
  for (const std::string& frame : validFrames()) {
    CAPTURE(frame);
    REQUIRE(sameDecode(frame));
    // Every one-byte deletion, and every byte replaced by one of a few that matter to JSON.
    const std::string swaps = "\"{}[],:01-.eE \\xu\x7f\x80\xc3";
    for (std::size_t i = 0; i < frame.size(); ++i) {
      std::string cut = frame;
      cut.erase(i, 1);
      CAPTURE(cut);
      CHECK(sameDecode(cut));
      for (char c : swaps) {
        std::string edited = frame;
        edited[i] = c;
        CAPTURE(edited);
        CHECK(sameDecode(edited));
        accepted += decode(edited).has_value();
        ++compared;
      }
    }
  }
  // The edits must include frames that still decode (else this compares only errors).
  CHECK(accepted > 100);
  MESSAGE(compared << " edited frames compared, " << accepted << " accepted");
}
