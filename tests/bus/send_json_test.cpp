// CommandClient::sendJson: a command given as JSON text goes out in exactly the frame send()
// writes for its parsed value (the runner sends spooled commands without parsing them).
#include <doctest/doctest.h>

#include <chrono>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "support.hpp"
#include "test_engine.hpp"

using namespace runrec::bus;
using namespace runrec::bus::test;
using namespace std::chrono_literals;

TEST_CASE("SendJsonSendsTheFrameSendWritesForTheSameCommand") {
  Context ctx;
  auto e = freshEndpoint(Transport::kInproc);
  auto out = outcomeEndpoint(e).value();
  zmq::socket_t pull(ctx.zmq(), zmq::socket_type::pull);
  zmq::socket_t router(ctx.zmq(), zmq::socket_type::router);
  pull.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::linger, 0);
  pull.bind(e);
  router.bind(out);
  auto client = CommandClient::connect(ctx, e, ChannelOptions{.hwm = 4, .linger = 500ms});
  REQUIRE(client);
  std::vector<std::string> frames;
  std::thread fake([&] {
    zmq::message_t m;
    (void)pull.recv(m);  // kOpen
    const auto open = nlohmann::json::parse(m.to_string());
    const std::string to = open["replyTo"];
    router.send(zmq::buffer(to), zmq::send_flags::sndmore);
    router.send(zmq::buffer(encode(Message{MessageType::kOpened, "r1", open["seq"], {{"runId", "r1"}}})));
    for (int i = 0; i < 2; ++i) {
      (void)pull.recv(m);
      frames.push_back(m.to_string());
    }
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
