// A fake engine on raw ZeroMQ sockets for the bus tests that need to see the exact frames a
// runner writes or to answer it badly: a PULL socket where runners send and a ROUTER socket
// for the replies, bound on a fresh inproc endpoint.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <zmq.hpp>

#include "runrec/bus/channel.hpp"
#include "test_engine.hpp"

namespace runrec::bus::test {

// Used from one thread at a time (ZeroMQ sockets are not thread-safe): typically built on the
// test's thread, then served from a thread standing in for the engine.
struct RawEngine {
  std::string endpoint = freshEndpoint(Transport::kInproc);
  zmq::socket_t pull, router;
  std::string replyTo;  // the runner's ROUTER identity, from its open

  explicit RawEngine(Context& ctx)
      : pull(ctx.zmq(), zmq::socket_type::pull), router(ctx.zmq(), zmq::socket_type::router) {
    pull.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::linger, 0);
    pull.bind(endpoint);
    router.bind(outcomeEndpoint(endpoint).value());
  }

  // The next frame a runner sent.
  std::string receive() {
    zmq::message_t m;
    (void)pull.recv(m);
    return m.to_string();
  }
  // A frame to the runner that opened.
  void reply(const std::string& frame) {
    router.send(zmq::buffer(replyTo), zmq::send_flags::sndmore);
    router.send(zmq::buffer(frame));
  }
  // Reads the runner's open and answers it opened, run `runId` (echoing the open's seq).
  void acceptOpen(const std::string& runId) {
    const auto open = nlohmann::json::parse(receive());
    replyTo = open["replyTo"];
    const std::uint64_t openSeq = open["seq"];
    reply(encode(Message{MessageType::kOpened, runId, openSeq, {{"runId", runId}}}));
  }
};

}  // namespace runrec::bus::test
