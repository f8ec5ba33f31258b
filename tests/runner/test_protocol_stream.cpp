// Streamed JSON protocols (openProtocol + forEachCommand): the same checks, messages and
// normalised commands as loadProtocol, without holding the file or its commands; a file
// changed after validation is refused before any command is given.
#include <doctest/doctest.h>

#include <fstream>

#include "runrec/runner/protocol.hpp"
#include "runrec/runner/seed.hpp"
#include "support.hpp"

namespace runrec::runner {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

fs::path write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::vector<json> streamed(const Protocol& protocol) {
  std::vector<json> out;
  auto st = forEachCommand(protocol, [&](json& command) {
    out.push_back(command);
    return true;
  });
  REQUIRE_MESSAGE(st.has_value(), (st ? "" : st.error().message));
  return out;
}

TEST_CASE("OpenProtocolGivesTheSameCommandsAsLoadProtocolWithoutHoldingThem") {
  auto dir = test::tempDir("protocol-stream");
  std::vector<fs::path> files = {write(dir / "seed.json", makeSeedProtocol(50).dump(2))};
  if (auto shared = test::requireShared()) {
    for (const char* v : {"v6", "v7", "v8"})
      for (const auto& e : fs::directory_iterator(*shared / "protocols" / "json" / v))
        if (e.path().extension() == ".json") files.push_back(e.path());
  }
  for (const auto& path : files) {
    CAPTURE(path);
    auto whole = loadProtocol(path);
    auto open = openProtocol(path);
    REQUIRE_MESSAGE(whole.has_value(), (whole ? "" : whole.error().message));
    REQUIRE_MESSAGE(open.has_value(), (open ? "" : open.error().message));
    CHECK(open->streamed);
    CHECK(open->commands.empty());
    CHECK(open->text.empty());
    CHECK(open->commandCount == whole->commands.size());
    CHECK(open->sha256 == whole->sha256);
    CHECK(open->schemaVersion == whole->schemaVersion);
    CHECK(open->metadata == whole->metadata);
    CHECK(open->liquids == whole->liquids);
    CHECK(open->labwareDefinitions == whole->labwareDefinitions);
    CHECK(open->warnings == whole->warnings);
    CHECK(open->name() == whole->name());
    CHECK(streamed(*open) == whole->commands);
    // The in-memory protocol gives its own commands the same way.
    CHECK(streamed(*whole) == whole->commands);
  }
}

TEST_CASE("OpenProtocolRejectsALateBadCommandWithLoadProtocolsMessage") {
  auto dir = test::tempDir("protocol-stream-bad");
  json doc = makeSeedProtocol(test::rounds(3000, 300));
  json& commands = doc["commands"];
  const std::size_t late = commands.size() - 2;
  SUBCASE("a wrong type") { commands[late]["params"]["wellName"] = 7; }
  SUBCASE("an unknown command type") { commands[late]["commandType"] = "fooBar"; }
  SUBCASE("a pipette never loaded") { commands[late]["params"]["pipetteId"] = "ghost"; }
  SUBCASE("not an object") { commands[late] = 42; }
  auto path = write(dir / "bad.json", doc.dump(2));
  auto whole = loadProtocol(path);
  auto open = openProtocol(path);
  REQUIRE_FALSE(whole);
  REQUIRE_FALSE(open);
  CHECK(open.error().message.find("commands[" + std::to_string(late) + "]") != std::string::npos);
  CHECK(open.error().message == whole.error().message);
  CHECK(open.error().code == whole.error().code);
}

TEST_CASE("OpenProtocolReportsSyntaxErrorsAtTheSameLineAndColumn") {
  auto dir = test::tempDir("protocol-stream-syntax");
  std::string text = makeSeedProtocol(200).dump(2);
  SUBCASE("late in the commands") {
    auto at = text.rfind("\"touchTip\"");
    text.insert(at, ",");
  }
  SUBCASE("truncated") { text.resize(text.size() - 40); }
  SUBCASE("trailing text") { text += "\n}"; }
  auto path = write(dir / "syntax.json", text);
  auto whole = loadProtocol(path);
  auto open = openProtocol(path);
  REQUIRE_FALSE(whole);
  REQUIRE_FALSE(open);
  CHECK(open.error().message.find("invalid JSON") != std::string::npos);
  CHECK(open.error().message == whole.error().message);
}

TEST_CASE("OpenProtocolKeepsTopLevelChecksBeforeCommandChecks") {
  // `commands` is first in a file written with sorted keys; a problem in a later top-level
  // member is still what is reported, as loadProtocol does.
  auto dir = test::tempDir("protocol-stream-top");
  json doc = makeSeedProtocol(10);
  doc["commands"][3]["params"]["volume"] = "ten";
  doc["robot"]["model"] = "OT-3 Standard";
  auto path = write(dir / "top.json", doc.dump());
  auto whole = loadProtocol(path);
  auto open = openProtocol(path);
  REQUIRE_FALSE(open);
  CHECK(open.error().message.find("robot.model") != std::string::npos);
  CHECK(open.error().message == whole.error().message);
}

TEST_CASE("OpenProtocolRefusesTwoCommandsMembers") {
  auto dir = test::tempDir("protocol-stream-dup");
  std::string text = makeSeedProtocol(3).dump();
  text.insert(text.size() - 1, ",\"commands\":[]");
  auto open = openProtocol(write(dir / "dup.json", text));
  REQUIRE_FALSE(open);
  CHECK(open.error().message == (dir / "dup.json").string() + ": commands: appears more than once");
}

TEST_CASE("ForEachCommandGivesNothingFromAFileChangedAfterValidation") {
  auto dir = test::tempDir("protocol-stream-changed");
  auto path = write(dir / "seed.json", makeSeedProtocol(20).dump());
  auto open = openProtocol(path);
  REQUIRE(open);
  // Still valid, but not the file validated.
  write(path, makeSeedProtocol(21).dump());
  int given = 0;
  auto st = forEachCommand(*open, [&](json&) {
    ++given;
    return true;
  });
  REQUIRE_FALSE(st);
  CHECK(given == 0);
  CHECK(st.error().message == path.string() + ": the file changed after it was validated; nothing was run");
}

TEST_CASE("ForEachCommandStopsWhenTheVisitorSaysSo") {
  auto dir = test::tempDir("protocol-stream-stop");
  auto open = openProtocol(write(dir / "seed.json", makeSeedProtocol(20).dump()));
  REQUIRE(open);
  int given = 0;
  auto st = forEachCommand(*open, [&](json&) { return ++given < 5; });
  CHECK(st);
  CHECK(given == 5);
}

TEST_CASE("OpenProtocolNamesAMissingFileAsLoadProtocolDoes") {
  auto dir = test::tempDir("protocol-stream-missing");
  auto open = openProtocol(dir / "nope.json");
  auto whole = loadProtocol(dir / "nope.json");
  REQUIRE_FALSE(open);
  CHECK(open.error().message == whole.error().message);
  auto asDir = openProtocol(dir);
  REQUIRE_FALSE(asDir);
  CHECK(asDir.error().message == loadProtocol(dir).error().message);
}

}  // namespace
}  // namespace runrec::runner
