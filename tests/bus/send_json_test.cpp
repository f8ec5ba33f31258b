// CommandClient::sendJson: a command given as JSON text goes out in exactly the frame send()
// writes for its parsed value (the runner sends spooled commands without parsing them).
#include <doctest/doctest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "raw_engine.hpp"
#include "support.hpp"
#include "test_engine.hpp"

using namespace runrec::bus;
using namespace runrec::bus::test;
using namespace std::chrono_literals;

TEST_CASE("SendJsonSendsTheFrameSendWritesForTheSameCommand") {
  Context ctx;
  RawEngine engine(ctx);
  auto client = CommandClient::connect(ctx, engine.endpoint, ChannelOptions{.hwm = 4, .linger = 500ms});
  REQUIRE(client);
  std::vector<std::string> frames;
  std::thread fake([&] {
    engine.acceptOpen("r1");
    for (int i = 0; i < 2; ++i) frames.push_back(engine.receive());
  });
  REQUIRE((*client)->open({}, 5s).value() == "r1");
  const nlohmann::json command = {
      {"commandType", "touchTip"},
      {"key", "k-\xc3\xa9\"\n"},
      {"params", {{"labwareId", "plate"}, {"radius", 0.75}, {"wellLocation", {{"offset", {{"z", -1.0}}}}}}}};
  REQUIRE((*client)->send(command, 5s));
  REQUIRE((*client)->sendJson(command.dump(), 5s));
  // Not an object: refused before anything is sent.
  for (const char* bad : {"", "[1]", "{\"a\":1", "\"x\""}) {
    CAPTURE(bad);
    auto st = (*client)->sendJson(bad, 5s);
    REQUIRE_FALSE(st);
    CHECK(codeIs(st.error(), ErrorCode::kMalformed));
  }
  fake.join();
  CHECK((*client)->sent() == 2);
  REQUIRE(frames.size() == 2);
  CHECK(frames[0] == encode(Message{MessageType::kCommand, "r1", 1, command}));
  CHECK(frames[1] == encode(Message{MessageType::kCommand, "r1", 2, command}));
  auto decoded = decode(frames[1]);
  REQUIRE(decoded);
  CHECK(decoded->body == command);
}
