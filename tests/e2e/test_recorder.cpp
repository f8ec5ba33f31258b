// Recorder end to end: replay and the determinism check, time travel, audit (text, JSON,
// HTML rendered in a real browser), export, fingerprint and verify (tampering caught).
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>

#include "pipeline_support.hpp"
#include "support/event_log.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/engine/state.hpp"
#include "runrec/hardware/sim_robot.hpp"
#include "runrec/recorder/audit.hpp"
#include "runrec/recorder/export.hpp"
#include "runrec/recorder/fingerprint.hpp"
#include "runrec/recorder/replay.hpp"
#include "runrec/recorder/report.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"

namespace runrec::test {
namespace {

using nlohmann::json;

// The seed protocol (tip A1, touch tips) plus liquid handling: 100 µL of water loaded into
// A1 and 60 µL of buffer into A2; 50 µL of A1 to B1, 30 µL of A2 to B1; a pause; a second
// tip for a mix back into A1. Commands are numbered as in the file.
json liquidProtocol(int touches = 3) {
  json p = runner::makeSeedProtocol(touches);
  p["liquids"] = {{"water", {{"displayName", "Water"}, {"description", "H2O"}, {"displayColor", "#0000ff"}}},
                  {"buffer", {{"displayName", "Buffer"}, {"description", "TE"}, {"displayColor", "#00ff00"}}}};
  json& c = p["commands"];
  auto at = [&](size_t i, json cmd) { c.insert(c.begin() + static_cast<long>(i), std::move(cmd)); };
  auto asp = [](const char* well, double v) {
    return json{{"commandType", "aspirate"},
                {"params", {{"pipetteId", "pipette"}, {"labwareId", "plate"}, {"wellName", well}, {"volume", v},
                            {"flowRate", 46.4}, {"wellLocation", {{"origin", "bottom"}, {"offset", {{"z", 1}}}}}}}};
  };
  auto disp = [](const char* well, double v) {
    return json{{"commandType", "dispense"},
                {"params", {{"pipetteId", "pipette"}, {"labwareId", "plate"}, {"wellName", well}, {"volume", v},
                            {"flowRate", 46.4}, {"wellLocation", {{"origin", "bottom"}, {"offset", {{"z", 1}}}}}}}};
  };
  // After the loads (pipette + 2 labware = 3 commands), before pickUpTip.
  at(3, {{"commandType", "loadLiquid"},
         {"params", {{"liquidId", "water"}, {"labwareId", "plate"}, {"volumeByWell", {{"A1", 100}}}}}});
  at(4, {{"commandType", "loadLiquid"},
         {"params", {{"liquidId", "buffer"}, {"labwareId", "plate"}, {"volumeByWell", {{"A2", 60}}}}}});
  // After pickUpTip (now index 5).
  at(6, asp("A1", 50));
  at(7, disp("B1", 50));
  at(8, asp("A2", 30));
  at(9, disp("B1", 30));
  at(10, {{"commandType", "waitForResume"}, {"params", {{"message", "check the plate"}}}});
  // At the end: the seed drops the tip back in A1; take B1's tip, move 20 µL of B1 to A1, drop in the trash.
  c.push_back({{"commandType", "pickUpTip"}, {"params", {{"pipetteId", "pipette"}, {"labwareId", "tiprack"}, {"wellName", "B1"}}}});
  c.push_back(asp("B1", 20));
  c.push_back(disp("A1", 20));
  c.push_back({{"commandType", "dropTip"}, {"params", {{"pipetteId", "pipette"}, {"labwareId", "fixedTrash"}, {"wellName", "A1"}}}});
  return p;
}

std::filesystem::path writeProtocol(const std::filesystem::path& dir, const json& p, const std::string& name = "liquids.json") {
  auto path = dir / name;
  std::ofstream(path) << p.dump(2);
  return path;
}

std::unique_ptr<engine::EventLog> openReadOnly(const std::filesystem::path& db) {
  return openLog(db, engine::LogOptions{engine::Sync::kNormal, true, false});
}

std::vector<engine::Event> eventsOf(const std::filesystem::path& db, const std::string& runId) {
  auto events = openReadOnly(db)->events(runId);
  REQUIRE(events.has_value());
  return *events;
}

json parse(const Proc& p) {
  INFO(p.err);
  json j = json::parse(p.out, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

// A recorded run of the liquid protocol on the virtual Smoothie, via the runrec binary.
struct Recorded {
  std::filesystem::path dir, db;
  std::string runId;
};
Recorded recordLiquidRun(const std::string& name) {
  Recorded r;
  r.dir = tempDir(name);
  r.db = r.dir / "runs.db";
  auto proto = writeProtocol(r.dir, liquidProtocol());
  auto run = runrec("run " + proto.string() + " --db " + r.db.string() + " --robot sim --events none --json");
  INFO(run.err);
  REQUIRE(run.exitCode == 0);
  r.runId = parse(run)["runId"];
  return r;
}

class FakeClock final : public recorder::Clock {
 public:
  double t = 1000;
  double longest = 0;
  int sleeps = 0;
  double now() override { return t; }
  void sleepFor(double s) override {
    t += s;
    longest = std::max(longest, s);
    sleeps++;
  }
};

}  // namespace

TEST_CASE("a replay on the virtual Smoothie matches its original event by event, positions included") {
  auto r = recordLiquidRun("replay-sim");
  auto p = runrec("replay " + r.runId + " --db " + r.db.string() + " --robot sim --json");
  INFO(p.err);
  CHECK(p.exitCode == 0);
  json j = parse(p);
  CHECK(j["originalRunId"] == r.runId);
  CHECK(j["comparison"]["identical"] == true);
  auto original = eventsOf(r.db, r.runId);
  auto replayed = eventsOf(r.db, j["replayRunId"]);
  CHECK(j["comparison"]["eventsCompared"] == original.size());
  REQUIRE(replayed.size() == original.size());
  // Positions are compared too: every motion result is the same number.
  int positions = 0;
  for (size_t i = 0; i < original.size(); ++i)
    if (original[i].type == engine::event::kCommandSucceeded && original[i].payload["result"].contains("position")) {
      CHECK(replayed[i].payload["result"]["position"] == original[i].payload["result"]["position"]);
      positions++;
    }
  CHECK(positions > 10);
  // The replay records the same protocol (same stored text) and the same engine settings.
  CHECK(replayed[0].payload["protocol"] == original[0].payload["protocol"]);
  CHECK(replayed[0].payload["engine"] == original[0].payload["engine"]);

  SUBCASE("text output names both runs") {
    auto t = runrec("replay " + r.runId.substr(0, 8) + " --db " + r.db.string() + " --max-speed");
    CHECK(t.exitCode == 0);
    CHECK(t.out.find("identical") != std::string::npos);
  }
}

TEST_CASE("a run that differs is reported at the first divergent seq, event type and field") {
  auto dir = tempDir("diverge");
  json a = liquidProtocol();
  json b = a;
  // The 8th command (dispense into B1) dispenses 40 µL instead of 50 in run B.
  REQUIRE(b["commands"][7]["commandType"] == "dispense");
  b["commands"][7]["params"]["volume"] = 40;
  auto runA = runInProcess(a, dir / "a.db");
  auto runB = runInProcess(b, dir / "b.db");
  auto ea = eventsOf(dir / "a.db", runA.result.runId);
  auto eb = eventsOf(dir / "b.db", runB.result.runId);
  // Different files have different digests; a replay shares its original's, so align them.
  CHECK(recorder::compareRuns(ea, eb).divergence->path == "payload.protocol.sha256");
  eb[0].payload["protocol"] = ea[0].payload["protocol"];
  auto cmp = recorder::compareRuns(ea, eb);
  REQUIRE_FALSE(cmp.identical());
  // runCreated, runStarted, then 2 events per command: command 8 starts at seq 2 + 7*2 + 1.
  CHECK(cmp.divergence->recordedSeq == 17);
  CHECK(cmp.divergence->type == "commandStarted");
  CHECK(cmp.divergence->path == "payload.params.volume");
  CHECK(cmp.divergence->recorded == 50);
  CHECK(cmp.divergence->replayed == 40);
  CHECK(cmp.compared == 16);

  SUBCASE("a changed position is named down to the coordinate") {
    auto ec = ea;
    auto& pos = ec[13].payload["result"]["position"];  // seq 14: pickUpTip's outcome
    REQUIRE(pos.is_object());
    pos["y"] = pos["y"].get<double>() + 0.001;
    auto d = recorder::compareRuns(ea, ec);
    REQUIRE(d.divergence);
    CHECK(d.divergence->recordedSeq == 14);
    CHECK(d.divergence->type == "commandSucceeded");
    CHECK(d.divergence->path == "payload.result.position.y");
  }
  SUBCASE("ids and wall-clock times are not differences") {
    auto ec = ea;
    for (auto& e : ec) {
      e.runId = "other";
      e.ts = "2030-01-01T00:00:00.000000Z";
    }
    CHECK(recorder::compareRuns(ea, ec).identical());
  }
  SUBCASE("a missing tail is a divergence at the first missing event") {
    auto ec = ea;
    ec.resize(ea.size() - 3);
    auto d = recorder::compareRuns(ea, ec);
    REQUIRE(d.divergence);
    CHECK(d.divergence->recordedSeq == static_cast<std::int64_t>(ea.size() - 2));
    CHECK(d.divergence->path == "event");
  }
}

TEST_CASE("a replay on another robot runs and reports its comparison") {
  auto r = recordLiquidRun("replay-diverge");
  auto same = runrec("replay last --db " + r.db.string() + " --robot sim-basic --json");
  // sim-basic reports the same positions as the virtual Smoothie (same geometry).
  json j = parse(same);
  if (same.exitCode != 0) MESSAGE("sim-basic differs from sim: " << j["comparison"]["divergence"].dump());
  CHECK((same.exitCode == 0 || same.exitCode == 1));
  CHECK(j["comparison"].contains("identical"));
}

TEST_CASE("replay --rate keeps the recorded gaps between commands, scaled, on the replay clock") {
  auto dir = tempDir("pacing");
  auto orig = runInProcess(liquidProtocol(), dir / "p.db");
  auto log = openReadOnly(dir / "p.db");
  auto plan = recorder::planReplay(*log, orig.result.runId);
  REQUIRE(plan.has_value());
  REQUIRE(plan->commands.size() == liquidProtocol()["commands"].size());
  CHECK(plan->commands.front().offsetSeconds == 0);
  // Pretend the original took 2 s between command starts.
  for (size_t i = 0; i < plan->commands.size(); ++i) plan->commands[i].offsetSeconds = 2.0 * static_cast<double>(i);
  log.reset();

  bus::Context ctx;
  engine::EngineOptions eo;
  eo.dbPath = dir / "p.db";
  eo.endpoint = "inproc://pacing-" + std::to_string(::getpid());
  eo.maxRuns = 1;
  eo.controlEndpoint = "none";
  auto eng = engine::Engine::create(ctx, eo, std::make_unique<hardware::SimRobot>());
  REQUIRE(eng.has_value());
  (*eng)->start();
  auto client = bus::CommandClient::connect(ctx, eo.endpoint, eo.channel);
  REQUIRE(client.has_value());
  FakeClock clock;
  recorder::ReplayOptions ro;
  ro.rate = 4;
  ro.clock = &clock;
  ro.timeout = std::chrono::seconds(30);
  auto result = recorder::replay(**client, *plan, ro);
  REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  client->reset();
  REQUIRE((*eng)->wait());
  // The last command is due at 2 s * (n - 1) / 4; the fake clock slept exactly that long,
  // in steps of at most 0.1 s (so a stop is noticed while waiting).
  CHECK(clock.t - 1000 == doctest::Approx(0.5 * static_cast<double>(plan->commands.size() - 1)));
  CHECK(clock.longest <= 0.1 + 1e-9);
  CHECK(result->summary["status"] == "succeeded");
  auto cmp = recorder::compareRuns(eventsOf(dir / "p.db", orig.result.runId), eventsOf(dir / "p.db", result->runId));
  CHECK_MESSAGE(cmp.identical(), (cmp.divergence ? cmp.divergence->message() : ""));
}

TEST_CASE("a partial replay (--from/--to) replays the load commands and the range, without comparing") {
  auto r = recordLiquidRun("replay-partial");
  // Commands 1-5 are loads (seq 3..11), pickUpTip is command 6 (seq 13).
  auto p = runrec("replay last --db " + r.db.string() + " --from 13 --to 21 --json");
  INFO(p.err);
  CHECK(p.exitCode == 0);
  json j = parse(p);
  CHECK(j["comparison"]["identical"].is_null());
  CHECK(j["commandsSent"] == 5 + 5);  // 5 loads + commands at seq 13, 15, 17, 19, 21
  CHECK(runrec("replay last --db " + r.db.string() + " --from 50 --to 10").exitCode == 2);
  CHECK(runrec("replay last --db " + r.db.string() + " --to 999999").exitCode == 2);
}

TEST_CASE("state --at SEQ is the engine's fold of events 1..SEQ") {
  auto r = recordLiquidRun("state");
  auto events = eventsOf(r.db, r.runId);
  // Find the pickUpTip outcome.
  std::int64_t pick = 0;
  for (auto& e : events)
    if (e.type == engine::event::kCommandStarted && e.payload["commandType"] == "pickUpTip") {
      pick = e.seq + 1;
      break;
    }
  REQUIRE(pick > 0);
  for (std::int64_t at : {std::int64_t{1}, pick - 1, pick, static_cast<std::int64_t>(events.size())}) {
    CAPTURE(at);
    auto p = runrec("state " + r.runId + " --db " + r.db.string() + " --at " + std::to_string(at) + " --json");
    REQUIRE(p.exitCode == 0);
    json j = parse(p);
    std::vector<engine::Event> prefix(events.begin(), events.begin() + at);
    CHECK(j["state"] == engine::toJson(engine::fold(prefix)));
    CHECK(j["event"]["seq"] == at);
  }
  auto before = parse(runrec("state last --db " + r.db.string() + " --at " + std::to_string(pick - 1) + " --json"));
  auto after = parse(runrec("state last --db " + r.db.string() + " --at " + std::to_string(pick) + " --json"));
  CHECK(before["state"]["pipettes"]["pipette"]["tip"].is_null());
  CHECK(after["state"]["pipettes"]["pipette"]["tip"]["wellName"] == "A1");
  CHECK(runrec("state last --db " + r.db.string() + " --at " + std::to_string(pick)).exitCode == 0);

  SUBCASE("bad input: exit 2 with a clear message") {
    auto zero = runrec("state last --db " + r.db.string() + " --at 0");
    CHECK(zero.exitCode == 2);
    CHECK(zero.err.find("has events 1..") != std::string::npos);
    CHECK(runrec("state last --db " + r.db.string() + " --at 100000").exitCode == 2);
    CHECK(runrec("state last --db " + r.db.string() + " --at x").exitCode == 2);
    auto unknown = runrec("state nosuchrun --db " + r.db.string() + " --at 1");
    CHECK(unknown.exitCode == 2);
    CHECK(runrec("state last --db " + (r.dir / "missing.db").string() + " --at 1").exitCode == 2);
  }
}

TEST_CASE("the audit accounts for tips, liquids, control actions, time and the fingerprint") {
  auto r = recordLiquidRun("audit");
  auto p = runrec("audit last --db " + r.db.string() + " --format json");
  INFO(p.err);
  REQUIRE(p.exitCode == 0);
  json a = parse(p);
  size_t commands = liquidProtocol()["commands"].size();
  CHECK(a["totals"]["protocolCommands"] == commands);
  CHECK(a["timeline"].size() == a["totals"]["commands"]);
  std::int64_t counted = 0;
  double ms = 0;
  for (auto& t : a["timeByType"]) {
    counted += t["count"].get<std::int64_t>();
    ms += t["totalMs"].get<double>();
  }
  CHECK(counted == a["totals"]["commands"]);
  CHECK(ms == doctest::Approx(a["totals"]["commandMs"].get<double>()).epsilon(1e-6));

  // Tips: A1 went back to A1, B1 to the trash.
  REQUIRE(a["tips"]["uses"].size() == 2);
  CHECK(a["tips"]["uses"][0]["wellName"] == "A1");
  CHECK(a["tips"]["uses"][0]["droppedTo"] == json{{"labwareId", "tiprack"}, {"wellName", "A1"}});
  CHECK(a["tips"]["uses"][0]["volumeAspirated"] == 80.0);
  CHECK(a["tips"]["uses"][1]["wellName"] == "B1");
  CHECK(a["tips"]["uses"][1]["droppedTo"]["labwareId"] == "fixedTrash");
  CHECK(a["tips"]["racks"][0]["used"] == 2);
  CHECK(a["tips"]["racks"][0]["tips"] == 96);

  // Liquids: per well in/out, and what is left.
  std::map<std::string, json> wells;
  for (auto& w : a["liquids"]["wells"]) wells[w["wellName"].get<std::string>()] = w;
  CHECK(wells["A1"]["loaded"] == json{{"water", 100.0}});
  CHECK(wells["A1"]["out"] == json{{"water", 50.0}});
  CHECK(wells["B1"]["in"]["water"] == 50.0);
  CHECK(wells["B1"]["in"]["buffer"] == 30.0);
  CHECK(wells["A2"]["final"] == json{{"buffer", 30.0}});
  // 20 µL of B1 (5:3 water:buffer) went to A1.
  CHECK(wells["A1"]["final"]["water"].get<double>() == doctest::Approx(62.5));
  CHECK(wells["A1"]["final"]["buffer"].get<double>() == doctest::Approx(7.5));
  CHECK(a["liquids"]["totals"]["water"]["loaded"] == 100.0);
  CHECK(a["liquids"]["totals"]["water"]["finalInWells"].get<double>() == doctest::Approx(100.0));

  // The protocol's pause is a control action with who asked.
  REQUIRE(a["control"].size() == 2);
  CHECK(a["control"][0]["type"] == "runPaused");
  CHECK(a["control"][0]["message"] == "check the plate");
  CHECK(a["control"][0].contains("requestedBy"));
  CHECK(a["control"][1]["type"] == "runResumed");
  CHECK(a["errors"].empty());
  CHECK(a["cleanup"].is_object());

  // The fingerprint is the one verify recomputes.
  auto v = parse(runrec("verify last --db " + r.db.string() + " --json"));
  CHECK(a["fingerprint"] == v["fingerprint"]);

  auto text = runrec("audit last --db " + r.db.string());
  CHECK(text.exitCode == 0);
  CHECK(text.out.find("Time per command type") != std::string::npos);
  CHECK(text.out.find(a["fingerprint"]["sha256"].get<std::string>()) != std::string::npos);

  SUBCASE("a failed command is in the errors with its context") {
    json bad = liquidProtocol();
    bad["commands"][7]["params"]["volume"] = 500;  // beyond the tip
    auto run = runInProcess(bad, r.dir / "failed.db");
    auto log = openReadOnly(r.dir / "failed.db");
    auto fa = recorder::auditRun(*log, run.result.runId);
    REQUIRE(fa.has_value());
    REQUIRE((*fa)["errors"].size() >= 1);
    CHECK((*fa)["errors"][0]["kind"] == "commandFailed");
    CHECK((*fa)["errors"][0]["commandType"] == "dispense");
    CHECK((*fa)["errors"][0]["params"]["volume"] == 500);
    CHECK((*fa)["totals"]["failedCommands"] == 1);
  }
  SUBCASE("bad input") {
    CHECK(runrec("audit last --db " + r.db.string() + " --format pdf").exitCode == 2);
    CHECK(runrec("audit nope --db " + r.db.string()).exitCode == 2);
  }
}

TEST_CASE("the HTML audit renders in a headless browser and its numbers match the JSON audit") {
  const char* chromium = "/usr/bin/chromium";
  bool ci = std::getenv("CI") && std::string(std::getenv("CI")) == "true";
  if (::access(chromium, X_OK) != 0) {
    if (ci) FAIL("CI=true but /usr/bin/chromium is missing (tools/install-deps.sh installs it)");
    MESSAGE("skipped: /usr/bin/chromium is missing (apt-get install chromium, or tools/install-deps.sh)");
    return;
  }
  auto r = recordLiquidRun("audit-html");
  auto html = r.dir / "audit.html";
  REQUIRE(runrec("audit last --db " + r.db.string() + " --format html -o " + html.string()).exitCode == 0);
  json a = parse(runrec("audit last --db " + r.db.string() + " --format json"));
  // Self-contained: nothing fetched from elsewhere.
  std::string page = readText(html);
  CHECK(page.find("http://") == page.find("http://www.w3.org/2000/svg"));
  CHECK(page.find("https://") == std::string::npos);
  CHECK(page.find("<link") == std::string::npos);

  auto profile = tempDir("chromium-profile");
  auto dom = r.dir / "dom.html";
  std::string cmd = std::string(chromium) +
                    " --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update"
                    " --disable-sync --no-first-run --user-data-dir=" + profile.string() + " --dump-dom file://" +
                    html.string() + " >" + dom.string() + " 2>" + (r.dir / "chromium.err").string();
  int rc = std::system(cmd.c_str());
  INFO(readText(r.dir / "chromium.err"));
  REQUIRE(rc == 0);
  std::string rendered = readText(dom);
  REQUIRE(rendered.size() > 1000);

  // The page's script ran in the browser and counted what it drew.
  std::smatch m;
  REQUIRE(std::regex_search(rendered, m, std::regex(R"re(id="js-check" data-bars="(\d+)" data-type-ms="([0-9.]+)")re")));
  CHECK(std::stoul(m[1]) == a["timeline"].size());
  CHECK(std::stod(m[2]) == doctest::Approx(a["totals"]["commandMs"].get<double>()).epsilon(1e-6));

  // Every number on the page is the JSON audit's value at its pointer.
  std::regex cellRe(R"re(data-audit="([^"]+)"[^>]*>([^<]*)<)re");
  int checked = 0;
  for (auto it = std::sregex_iterator(rendered.begin(), rendered.end(), cellRe); it != std::sregex_iterator(); ++it) {
    std::string ptr = (*it)[1], shown = (*it)[2];
    CAPTURE(ptr);
    CAPTURE(shown);
    json::json_pointer jp(ptr);
    REQUIRE(a.contains(jp));
    const json& v = a[jp];
    if (v.is_number())
      CHECK(std::stod(shown) == doctest::Approx(v.get<double>()).epsilon(1e-3));
    else
      CHECK(shown == v.get<std::string>());
    checked++;
  }
  CHECK(checked > 40);
  // The deck map: 12 slots, used tips drawn as used.
  auto occurrences = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t pos = 0; (pos = rendered.find(needle, pos)) != std::string::npos; pos += needle.size()) n++;
    return n;
  };
  CHECK(occurrences("class=\"deck-slot\"") == 12);
  CHECK(occurrences("class=\"tip used\"") == 2);
}

TEST_CASE("export: robot-server command records, RFC 4180 CSV and the raw event stream") {
  auto r = recordLiquidRun("export");
  auto events = eventsOf(r.db, r.runId);
  json detail = *recorder::runDetail(*openReadOnly(r.db), r.runId);

  auto cj = runrec("export last --db " + r.db.string() + " --format commands-json");
  REQUIRE(cj.exitCode == 0);
  json doc = parse(cj);
  REQUIRE(doc["data"].size() == detail["commands"].size());
  CHECK(doc["meta"]["totalLength"] == doc["data"].size());
  for (auto& c : doc["data"]) {
    for (auto* k : {"id", "key", "commandType", "createdAt", "startedAt", "completedAt", "status", "params", "result",
                    "error", "intent", "notes"})
      CHECK_MESSAGE(c.contains(k), k);
    CHECK((c["intent"] == "protocol" || c["intent"] == "fixit"));
    CHECK((c["status"] == "succeeded" || c["status"] == "failed"));
  }
  CHECK(doc["data"][0]["commandType"] == "loadPipette");

  auto nd = runrec("export last --db " + r.db.string() + " --format ndjson");
  REQUIRE(nd.exitCode == 0);
  std::istringstream lines(nd.out);
  std::string line;
  size_t n = 0;
  while (std::getline(lines, line)) {
    json e = json::parse(line);
    CHECK(e["seq"] == events[n].seq);
    CHECK(e["type"] == events[n].type);
    CHECK(e["payload"] == events[n].payload);
    CHECK(e["hash"].get<std::string>().size() == 64);
    n++;
  }
  CHECK(n == events.size());

  auto csv = r.dir / "commands.csv";
  REQUIRE(runrec("export last --db " + r.db.string() + " --format csv -o " + csv.string()).exitCode == 0);
  std::string text = readText(csv);
  CHECK(text.rfind("index,id,key,commandType,", 0) == 0);
  // One row per command: params are JSON with commas and quotes, so quoted and doubled.
  size_t rows = 0;
  for (size_t pos = 0; (pos = text.find("\r\n", pos)) != std::string::npos; pos += 2) rows++;
  CHECK(rows == detail["commands"].size() + 1);
  CHECK(text.find(R"("{""labwareId"":""plate"")") != std::string::npos);
  CHECK(recorder::csvField("plain") == "plain");
  CHECK(recorder::csvField("a,\"b\"\nc") == "\"a,\"\"b\"\"\nc\"");

  CHECK(runrec("export last --db " + r.db.string() + " --format xml").exitCode == 2);
  CHECK(runrec("export last --db " + r.db.string()).exitCode == 2);
}

TEST_CASE("verify passes an untouched run and catches a byte changed with the sqlite3 shell") {
  auto r = recordLiquidRun("verify");
  auto ok = runrec("verify last --db " + r.db.string() + " --json");
  INFO(ok.err);
  REQUIRE(ok.exitCode == 0);
  json v = parse(ok);
  CHECK(v["ok"] == true);
  std::string fp = v["fingerprint"]["sha256"];
  CHECK(runrec("verify last --db " + r.db.string() + " --fingerprint " + fp).exitCode == 0);
  auto exported = r.dir / "events.ndjson";
  REQUIRE(runrec("export last --db " + r.db.string() + " --format ndjson -o " + exported.string()).exitCode == 0);
  CHECK(runrec("verify last --db " + r.db.string() + " --against " + exported.string()).exitCode == 0);
  CHECK(runrec("verify last --db " + r.db.string() + " --fingerprint zz").exitCode == 2);
  CHECK(runrec("verify nosuch --db " + r.db.string()).exitCode == 2);

  // Tamper: the append-only triggers stop an UPDATE, so drop them first, then change one
  // digit of a recorded volume (seq 16: the first aspirate's outcome, 50 -> 58).
  auto events = eventsOf(r.db, r.runId);
  REQUIRE(events[15].type == "commandSucceeded");
  REQUIRE(events[15].payload["result"]["volume"] == 50.0);
  if (::access("/usr/bin/sqlite3", X_OK) != 0) {
    MESSAGE("skipped the tamper half: the sqlite3 shell is missing");
    return;
  }
  std::string sql = "DROP TRIGGER events_no_update; UPDATE events SET payload = replace(payload, '\"volume\":50', "
                    "'\"volume\":58') WHERE run_id = '" + r.runId + "' AND seq = 16;";
  REQUIRE(std::system(("sqlite3 " + r.db.string() + " \"" + std::regex_replace(sql, std::regex("\""), "\\\"") + "\"").c_str()) == 0);
  REQUIRE(eventsOf(r.db, r.runId)[15].payload["result"]["volume"] == 58.0);

  auto bad = runrec("verify last --db " + r.db.string() + " --fingerprint " + fp);
  CHECK(bad.exitCode == 1);
  CHECK(bad.out.find("FAIL  fingerprint") != std::string::npos);
  auto named = parse(runrec("verify last --db " + r.db.string() + " --against " + exported.string() + " --json"));
  CHECK(named["ok"] == false);
  CHECK(named["firstBad"] == 16);
  // Without anything kept, the structural checks still pass: that is why the fingerprint is kept.
  CHECK(runrec("verify last --db " + r.db.string()).exitCode == 0);

  SUBCASE("a deleted event breaks the sequence") {
    std::string del = "DROP TRIGGER events_no_delete; DELETE FROM events WHERE run_id = '" + r.runId + "' AND seq = 20;";
    REQUIRE(std::system(("sqlite3 " + r.db.string() + " \"" + del + "\"").c_str()) == 0);
    auto gap = parse(runrec("verify last --db " + r.db.string() + " --json"));
    CHECK(gap["ok"] == false);
    CHECK(gap["firstBad"] == 20);
  }
}

}  // namespace runrec::test

namespace runrec::test {

TEST_CASE("a stop (SIGTERM, as Ctrl-C) during a paced replay ends the new run stopped, and it diverges") {
  auto dir = tempDir("replay-stop");
  auto db = dir / "s.db";
  auto proto = dir / "seed.json";
  std::ofstream(proto) << runner::makeSeedProtocol(40).dump();
  REQUIRE(runrec("run " + proto.string() + " --db " + db.string() + " --events none").exitCode == 0);
  // Recorded gaps are well under a millisecond; at --rate 0.0002 the replay takes minutes.
  auto out = dir / "out.json", rcFile = dir / "rc";
  std::string script = runrecPath() + " replay last --db " + db.string() + " --rate 0.0002 --events none --json >" +
                       out.string() + " 2>" + (dir / "err").string() + " & pid=$!; sleep 1.5; kill -TERM $pid; wait $pid; echo $? >" +
                       rcFile.string();
  auto start = std::chrono::steady_clock::now();
  REQUIRE(std::system(("bash -c '" + script + "'").c_str()) == 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
  INFO(readText(dir / "err"));
  CHECK(std::stoi(readText(rcFile)) == 1);
  json j = json::parse(readText(out));
  CHECK(j["summary"]["status"] == "stopped");
  CHECK(j["comparison"]["identical"] == false);
  auto events = engine::EventLog::open(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  REQUIRE(events.has_value());
  auto replayed = (*events)->events(j["replayRunId"]);
  REQUIRE(replayed.has_value());
  bool asked = false;
  for (auto& e : *replayed)
    if (e.type == engine::event::kRunStopRequested)
      asked = e.payload["requestedBy"].get<std::string>().find("Ctrl-C in runrec replay") != std::string::npos;
  CHECK(asked);
}

}  // namespace runrec::test
