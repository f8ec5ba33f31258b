// Tests for endpoint validation and the derivation of the outcome endpoint out(E).
#include <doctest/doctest.h>

#include <string>

#include "runrec/bus/channel.hpp"
#include "test_engine.hpp"

using namespace runrec::bus;
using runrec::bus::test::codeIs;

TEST_CASE("OutcomeEndpointIsDerivedPerTransport") {
  CHECK(outcomeEndpoint("inproc://engine").value() == "inproc://engine.out");
  CHECK(outcomeEndpoint("ipc:///run/runrec/engine").value() == "ipc:///run/runrec/engine.out");
  CHECK(outcomeEndpoint("ipc://relative.sock").value() == "ipc://relative.sock.out");
  CHECK(outcomeEndpoint("tcp://127.0.0.1:5555").value() == "tcp://127.0.0.1:5556");
  CHECK(outcomeEndpoint("tcp://*:7000").value() == "tcp://*:7001");
  CHECK(outcomeEndpoint("tcp://robot.local:1").value() == "tcp://robot.local:2");
  CHECK(outcomeEndpoint("tcp://[::1]:9000").value() == "tcp://[::1]:9001");
  CHECK(outcomeEndpoint("tcp://127.0.0.1:65534").value() == "tcp://127.0.0.1:65535");
}

TEST_CASE("InvalidEndpointsAreRejectedWithAReason") {
  struct Case {
    std::string endpoint;
    std::string reason;
  };
  for (const auto& c : {
           Case{"", "expected inproc://name, ipc://path or tcp://host:port"},
           Case{"udp://1.2.3.4:5", "expected inproc://name"},
           Case{"engine", "expected inproc://name"},
           Case{"INPROC://x", "expected inproc://name"},
           Case{"inproc://", "needs a name"},
           Case{"inproc://a b", "whitespace"},
           Case{"ipc://", "needs a socket path"},
           Case{"ipc://*", "not supported"},
           Case{"ipc:///" + std::string(110, 'p'), "too long"},
           Case{"tcp://", "expected tcp://host:port"},
           Case{"tcp://localhost", "expected tcp://host:port"},
           Case{"tcp://:5555", "host is empty"},
           Case{"tcp://h:", "is not a number"},
           Case{"tcp://h:x1", "is not a number"},
           Case{"tcp://h:12ab", "is not a number"},
           Case{"tcp://h:-1", "is not a number"},
           Case{"tcp://h:*", "fixed number"},
           Case{"tcp://h:0", "fixed number"},
           Case{"tcp://h:65535", "1..65534"},
           Case{"tcp://h:99999", "1..65534"},
           Case{"tcp://a;b:5", "';'"},
       }) {
    CAPTURE(c.endpoint);
    auto r = outcomeEndpoint(c.endpoint);
    REQUIRE_FALSE(r.has_value());
    CHECK(codeIs(r.error(), ErrorCode::kInvalidEndpoint));
    CAPTURE(r.error().message);
    CHECK(r.error().message.find(c.reason) != std::string::npos);
    CHECK(r.error().message.find(c.endpoint) != std::string::npos);
  }
}

TEST_CASE("ConnectAndBindRejectInvalidEndpointsAndOptions") {
  Context ctx;
  auto c = CommandClient::connect(ctx, "udp://x:1");
  REQUIRE_FALSE(c);
  CHECK(codeIs(c.error(), ErrorCode::kInvalidEndpoint));
  auto s = CommandServer::bind(ctx, "tcp://127.0.0.1:0");
  REQUIRE_FALSE(s);
  CHECK(codeIs(s.error(), ErrorCode::kInvalidEndpoint));
  auto zero = CommandClient::connect(ctx, "inproc://x", ChannelOptions{.hwm = 0});
  REQUIRE_FALSE(zero);
  CHECK(codeIs(zero.error(), ErrorCode::kInvalidEndpoint));
  CHECK(zero.error().message.find("hwm") != std::string::npos);
}
