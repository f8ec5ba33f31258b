// CURVE on the live-event endpoints, end to end over real sockets: an engine with
// --curve-keys serves an authorised client (live events and history) and gives nothing to a
// client without keys or with a key it does not know; the CLI refuses a non-loopback bind
// without --curve-keys or --insecure; `runrec keys` writes the documented layout.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <thread>
#include <zmq.hpp>

#include "pipeline_support.hpp"
#include "runrec/bus/curve.hpp"
#include "runrec/bus/events.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"
#include "support/live_events.hpp"

using namespace runrec;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string ipcEvents(const char* what) {
  static int n = 0;
  return "ipc:///tmp/runrec-curve-" + std::to_string(::getpid()) + "-" + what + "-" + std::to_string(++n) + ".events";
}

// A server key folder and one authorised client folder.
struct Keys {
  fs::path server, client;
  explicit Keys(const char* name) {
    fs::path root = test::tempDir(std::string("curve-") + name);
    server = root / "server";
    client = root / "client";
    auto s = bus::generateServerKeys(server);
    REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message));
    auto c = bus::generateClientKeys(server, client, "test-client");
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message));
  }
};

// An engine whose event endpoints use CURVE with `keys.server`.
struct SecureEngine {
  bus::Context ctx;  // the engine's (and its ZAP handler's) context; clients use their own
  fs::path db;
  std::string endpoint, events;
  std::shared_ptr<bus::CurveServer> curve;
  std::unique_ptr<engine::Engine> eng;

  SecureEngine(const char* name, const Keys& keys) {
    db = test::tempDir(std::string("curve-db-") + name) / "runrec.db";
    static int n = 0;
    endpoint = "inproc://curve-" + std::to_string(++n);
    events = ipcEvents(name);
    auto server = bus::CurveServer::start(ctx, keys.server);
    REQUIRE_MESSAGE(server.has_value(), (server ? "" : server.error().message));
    curve = *server;
    engine::EngineOptions eo;
    eo.dbPath = db;
    eo.endpoint = endpoint;
    eo.eventsEndpoint = events;
    eo.eventsCurve = curve;
    auto e = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
    REQUIRE_MESSAGE(e.has_value(), (e ? "" : e.error().message));
    eng = std::move(*e);
    eng->start();
  }
  ~SecureEngine() {
    if (eng) eng->requestShutdown();
  }
  runner::RunResult run(int touches) {
    auto result =
        test::runOverBus(ctx, endpoint, runner::makeSeedProtocol(touches), "curve.json", std::chrono::seconds(60));
    REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
    return *result;
  }
};

bool codeIs(const bus::Error& e, bus::ErrorCode c) {
  if (e.code != c) MESSAGE("error " << bus::toString(e.code) << ": " << e.message);
  return e.code == c;
}

// A raw SUB socket on its own context: counts what arrives within `window`.
int rawSubscriberReceives(const std::string& ep, const bus::CurveClientKeys* keys, std::chrono::milliseconds window,
                          const std::function<void()>& whileWaiting) {
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  if (keys) {
    sub.set(zmq::sockopt::curve_serverkey, keys->serverPublic);
    sub.set(zmq::sockopt::curve_publickey, keys->publicKey);
    sub.set(zmq::sockopt::curve_secretkey, keys->secretKey);
  }
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(ep);
  std::thread side(whileWaiting);
  int n = 0;
  auto until = std::chrono::steady_clock::now() + window;
  while (std::chrono::steady_clock::now() < until) {
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 50ms) > 0) {
      zmq::message_t m;
      while (sub.recv(m, zmq::recv_flags::dontwait)) n++;
    }
  }
  side.join();
  return n;
}

}  // namespace

TEST_CASE("curve: key folders have the documented layout and secret keys stay private") {
  REQUIRE(bus::curveAvailable());
  Keys k("layout");
  for (auto f : {k.server / "server.key", k.server / "server.pub", k.server / "authorized" / "test-client.pub",
                 k.client / "client.key", k.client / "client.pub", k.client / "server.pub"})
    CHECK_MESSAGE(fs::is_regular_file(f), f.string());
  struct stat st {};
  REQUIRE(::stat((k.server / "server.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((k.client / "client.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  // The client holds the server's public key; the server holds the client's.
  CHECK(*bus::readKeyFile(k.client / "server.pub", false) == *bus::readKeyFile(k.server / "server.pub", false));
  CHECK(*bus::readKeyFile(k.server / "authorized" / "test-client.pub", false) ==
        *bus::readKeyFile(k.client / "client.pub", false));
  // Generating again never overwrites.
  CHECK(!bus::generateServerKeys(k.server).has_value());
  CHECK(!bus::generateClientKeys(k.server, k.client, "test-client").has_value());
  // A secret key readable by others is refused, as is a mismatched pair.
  fs::permissions(k.server / "server.key", fs::perms::group_read, fs::perm_options::add);
  bus::Context ctx;
  auto loose = bus::CurveServer::start(ctx, k.server);
  REQUIRE(!loose.has_value());
  CHECK(loose.error().message.find("readable by others") != std::string::npos);
  fs::permissions(k.server / "server.key", fs::perms::group_read, fs::perm_options::remove);
  fs::remove(k.server / "server.pub");
  std::ofstream(k.server / "server.pub") << *bus::readKeyFile(k.client / "client.pub", false) << "\n";
  auto mismatched = bus::CurveServer::start(ctx, k.server);
  REQUIRE(!mismatched.has_value());
  CHECK(mismatched.error().message.find("not the public key") != std::string::npos);
}

TEST_CASE("curve: loopback endpoints") {
  for (auto e : {"ipc:///tmp/x.events", "inproc://x", "tcp://127.0.0.1:7100", "tcp://127.1.2.3:7100",
                 "tcp://localhost:7100", "tcp://[::1]:7100"})
    CHECK_MESSAGE(bus::isLoopbackEndpoint(e), e);
  for (auto e : {"tcp://0.0.0.0:7100", "tcp://*:7100", "tcp://192.168.1.20:7100", "tcp://eth0:7100",
                 "tcp://127.0.0.1.evil.example:7100", "tcp://[::]:7100"})
    CHECK_MESSAGE(!bus::isLoopbackEndpoint(e), e);
}

TEST_CASE("curve: an authorised client gets every event live and from history") {
  Keys k("authorised");
  SecureEngine e("authorised", k);
  auto keys = bus::loadClientKeys(k.client);
  REQUIRE(keys.has_value());
  bus::Context clientCtx;
  // Live: subscribed before the run.
  test::EventFollower live(clientCtx, e.events, {.requestTimeout = 5s, .curve = *keys});
  std::this_thread::sleep_for(300ms);  // the subscription reaches the engine
  auto result = e.run(20);
  CHECK(result.succeeded());
  live.thread.join();
  REQUIRE_MESSAGE(live.result.has_value(), (live.result ? "" : live.result.error().message));
  REQUIRE(!live.got.empty());
  CHECK(live.got.back()["type"] == "runFinished");
  CHECK(live.sub->stats().fromLive > 0);
  for (std::size_t i = 0; i < live.got.size(); ++i) CHECK(live.got[i]["seq"] == static_cast<std::int64_t>(i + 1));
  // History: a client joining after the run reads the same events.
  auto hist = bus::HistoryClient::connect(clientCtx, *bus::historyEndpoint(e.events), 5s, *keys);
  REQUIRE(hist.has_value());
  auto page = (*hist)->events(result.runId, 1, 10000);
  REQUIRE_MESSAGE(page.has_value(), (page ? "" : page.error().message));
  CHECK((*page)["events"].size() == live.got.size());
  CHECK((*page)["events"].back() == live.got.back());
  CHECK(e.curve->accepted() >= 2);
}

TEST_CASE("curve: a client without keys or with an unknown key gets nothing") {
  Keys k("refused");
  SecureEngine e("refused", k);
  auto result = e.run(5);  // history has a run to leak, if it leaked
  REQUIRE(result.succeeded());
  auto good = bus::loadClientKeys(k.client);
  REQUIRE(good.has_value());
  auto stranger = bus::generateCurveKeyPair();
  REQUIRE(stranger.has_value());
  bus::CurveClientKeys unknown{good->serverPublic, stranger->publicKey, stranger->secretKey};
  std::string hist = *bus::historyEndpoint(e.events);

  SUBCASE("history") {
    bus::Context ctx;
    auto plain = bus::HistoryClient::connect(ctx, hist, 1500ms);
    REQUIRE(plain.has_value());
    auto a = (*plain)->runs();
    REQUIRE(!a.has_value());
    CHECK(codeIs(a.error(), bus::ErrorCode::kTimeout));
    auto bad = bus::HistoryClient::connect(ctx, hist, 1500ms, unknown);
    REQUIRE(bad.has_value());
    auto b = (*bad)->events(result.runId, 1, 10);
    REQUIRE(!b.has_value());
    CHECK(codeIs(b.error(), bus::ErrorCode::kTimeout));
    CHECK(e.curve->refused() >= 1);  // the unknown key reached the ZAP handler and was refused
    // The same engine still serves an authorised client.
    auto ok = bus::HistoryClient::connect(ctx, hist, 5s, *good);
    REQUIRE(ok.has_value());
    CHECK((*ok)->runs().has_value());
  }
  SUBCASE("live events") {
    // A second run publishes while the raw subscribers listen; only the authorised one hears it.
    auto runAgain = [&] { CHECK(e.run(5).succeeded()); };
    CHECK(rawSubscriberReceives(e.events, nullptr, 1500ms, [&] {
            std::this_thread::sleep_for(300ms);
            runAgain();
          }) == 0);
    CHECK(rawSubscriberReceives(e.events, &unknown, 1500ms, [&] {
            std::this_thread::sleep_for(300ms);
            runAgain();
          }) == 0);
    CHECK(rawSubscriberReceives(e.events, &*good, 1500ms, [&] {
            std::this_thread::sleep_for(300ms);
            runAgain();
          }) > 0);
  }
  SUBCASE("the subscriber library reports a timeout, having delivered nothing") {
    bus::Context ctx;
    test::EventFollower f(ctx, e.events, {.requestTimeout = 1500ms, .curve = unknown});
    f.thread.join();
    REQUIRE(!f.result.has_value());
    CHECK(codeIs(f.result.error(), bus::ErrorCode::kTimeout));
    CHECK(f.got.empty());
  }
}

TEST_CASE("curve: revoking a client (deleting its authorized/*.pub) refuses its next connection") {
  Keys k("revoke");
  SecureEngine e("revoke", k);
  auto good = bus::loadClientKeys(k.client);
  REQUIRE(good.has_value());
  std::string hist = *bus::historyEndpoint(e.events);
  bus::Context ctx;
  {
    auto c = bus::HistoryClient::connect(ctx, hist, 5s, *good);
    REQUIRE(c.has_value());
    CHECK((*c)->runs().has_value());
  }
  fs::remove(k.server / "authorized" / "test-client.pub");
  auto c = bus::HistoryClient::connect(ctx, hist, 1500ms, *good);
  REQUIRE(c.has_value());
  auto a = (*c)->runs();
  REQUIRE(!a.has_value());
  CHECK(codeIs(a.error(), bus::ErrorCode::kTimeout));
}

TEST_CASE("curve: the CLI refuses a non-loopback event endpoint without --curve-keys or --insecure") {
  fs::path dir = test::tempDir("curve-cli");
  std::string db = (dir / "runrec.db").string();
  std::string seed = (dir / "seed.json").string();
  std::ofstream(seed) << runner::makeSeedProtocol(2).dump();
  auto run = [&](const std::string& extra) {
    std::string cmd = test::runrecPath() + " run " + seed + " --db " + db + " " + extra + " >" +
                      (dir / "out.txt").string() + " 2>" + (dir / "err.txt").string();
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  auto err = [&] {
    std::ifstream in(dir / "err.txt");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  CHECK(run("--events tcp://0.0.0.0:17481") == 2);
  CHECK(err().find("--curve-keys") != std::string::npos);
  CHECK(!fs::exists(db));  // refused before anything ran
  CHECK(run("--events tcp://0.0.0.0:17481 --insecure") == 0);
  CHECK(err().find("--insecure") != std::string::npos);  // still warned
  // With keys: `runrec keys` makes them; the run publishes encrypted.
  std::string keys = (dir / "keys").string();
  CHECK(std::system((test::runrecPath() + " keys generate " + keys + " >/dev/null").c_str()) == 0);
  CHECK(std::system((test::runrecPath() + " keys client " + keys + " " + (dir / "client").string() +
                     " --name ci >/dev/null").c_str()) == 0);
  CHECK(fs::exists(fs::path(keys) / "authorized" / "ci.pub"));
  CHECK(run("--events tcp://0.0.0.0:17481 --curve-keys " + keys) == 0);
  CHECK(run("--events none --curve-keys " + keys) == 2);
}
