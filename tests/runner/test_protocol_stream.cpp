// Streamed JSON protocols (openProtocol + forEachCommand): the same checks, messages and
// normalised commands as loadProtocol, without holding the file or its commands; a file
// changed after validation is refused before any command is given.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <optional>

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

// The JSON protocols to stream: a seed written into `dir`, and every v6-v8 protocol of the
// shared reference data (when it is there).
std::vector<fs::path> protocolFiles(const fs::path& dir) {
  std::vector<fs::path> files = {write(dir / "seed.json", makeSeedProtocol(50).dump(2))};
  if (auto shared = test::requireShared()) {
    for (const char* v : {"v6", "v7", "v8"})
      for (const auto& e : fs::directory_iterator(*shared / "protocols" / "json" / v))
        if (e.path().extension() == ".json") files.push_back(e.path());
  }
  return files;
}

// Sets an environment variable for the life of the object, then puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string compact(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

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
  for (const auto& path : protocolFiles(test::tempDir("protocol-stream"))) {
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

TEST_CASE("ForEachCommandTextGivesEachValidatedCommandAsTheTextTheBusWouldWrite") {
  for (const auto& path : protocolFiles(test::tempDir("protocol-stream-text"))) {
    CAPTURE(path);
    auto whole = loadProtocol(path);
    auto open = openProtocol(path);
    REQUIRE(whole);
    REQUIRE(open);
    CHECK(open->spool);
    std::vector<std::string> expected, fromOpen, fromWhole;
    for (const auto& c : whole->commands) expected.push_back(compact(c));
    for (auto* out : {&fromOpen, &fromWhole}) {
      auto st = forEachCommandText(out == &fromOpen ? *open : *whole, [&](std::string_view text) {
        out->emplace_back(text);
        return true;
      });
      REQUIRE_MESSAGE(st.has_value(), (st ? "" : st.error().message));
    }
    CHECK(fromOpen == expected);
    CHECK(fromWhole == expected);
  }
}

TEST_CASE("AStreamedProtocolGivesWhatWasValidatedEvenIfTheFileChangesWhileItIsSent") {
  // The commands come from the private copy written while validating: a file rewritten (even
  // with garbage) after the check is not read again.
  // More than the 1 MiB a pass reads at once, so a pass reading the file again would see it.
  auto dir = test::tempDir("protocol-stream-midrun");
  const std::string text = makeSeedProtocol(8000).dump(2);
  REQUIRE(text.size() > (std::size_t{1} << 20) + 100'000);
  auto path = write(dir / "seed.json", text);
  auto whole = loadProtocol(path);
  REQUIRE(whole);
  for (FileCheck check : {FileCheck::kDigest, FileCheck::kCheckedByEngine}) {
    write(path, text);
    auto open = openProtocol(path);
    REQUIRE(open);
    std::vector<json> given;
    auto st = forEachCommand(
        *open,
        [&](json& command) {
          given.push_back(command);
          if (given.size() == 3) write(path, "{\"not\": \"the file validated\"}");
          return true;
        },
        check);
    REQUIRE_MESSAGE(st.has_value(), (st ? "" : st.error().message));
    CHECK(given == whole->commands);
  }
}

TEST_CASE("ForEachCommandTextRefusesAFileChangedAfterValidationUnlessTheEngineCheckedIt") {
  auto dir = test::tempDir("protocol-stream-text-changed");
  auto path = write(dir / "seed.json", makeSeedProtocol(20).dump());
  auto whole = loadProtocol(path);
  auto open = openProtocol(path);
  REQUIRE(whole);
  REQUIRE(open);
  write(path, makeSeedProtocol(21).dump());
  int given = 0;
  auto st = forEachCommandText(*open, [&](std::string_view) { return ++given > 0; });
  REQUIRE_FALSE(st);
  CHECK(given == 0);
  CHECK(st.error().code == ErrorCode::kInvalidProtocol);
  CHECK(st.error().message == path.string() + ": the file changed after it was validated; nothing was run");
  // runProtocol's case: the engine refused or accepted the file at open; what is given is
  // still exactly what was validated.
  std::vector<std::string> texts;
  st = forEachCommandText(
      *open,
      [&](std::string_view text) {
        texts.emplace_back(text);
        return true;
      },
      FileCheck::kCheckedByEngine);
  REQUIRE(st);
  REQUIRE(texts.size() == whole->commands.size());
  for (std::size_t i = 0; i < texts.size(); ++i) CHECK(texts[i] == compact(whole->commands[i]));
}

TEST_CASE("TheCopyOfTheCommandsIsInvisibleInTheTemporaryDirectory") {
  auto dir = test::tempDir("protocol-stream-spool");
  auto path = write(dir / "seed.json", makeSeedProtocol(40).dump());
  auto tmp = dir / "tmp";
  fs::create_directories(tmp);
  ScopedEnv env("TMPDIR", tmp.string());
  auto open = openProtocol(path);
  REQUIRE(open);
  REQUIRE(open->spool);
  CHECK(fs::is_empty(tmp));  // unnamed: nothing can open it to change it
  CHECK(streamed(*open) == loadProtocol(path)->commands);
}

TEST_CASE("WithoutATemporaryFileTheCommandsAreValidatedAgainAsTheyAreSent") {
  auto dir = test::tempDir("protocol-stream-nospool");
  json doc = makeSeedProtocol(8000);
  auto path = write(dir / "seed.json", doc.dump(2));
  ScopedEnv env("TMPDIR", (dir / "no-such-dir").string());
  auto whole = loadProtocol(path);
  auto open = openProtocol(path);
  REQUIRE(whole);
  REQUIRE(open);
  CHECK_FALSE(open->spool);
  CHECK(streamed(*open) == whole->commands);
  std::vector<std::string> texts;
  auto st = forEachCommandText(*open, [&](std::string_view text) {
    texts.emplace_back(text);
    return true;
  });
  REQUIRE(st);
  REQUIRE(texts.size() == whole->commands.size());
  CHECK(texts.back() == compact(whole->commands.back()));
  // The file is read again, so a change while it is sent is found: here past the first
  // 1 MiB (the members after `commands`), reported at the end.
  doc["metadata"]["author"] = "someone else";
  int given = 0;
  st = forEachCommand(*open, [&](json&) {
    if (++given == 1) write(path, doc.dump(2));
    return true;
  });
  REQUIRE_FALSE(st);
  CHECK(st.error().message.find("the file changed") != std::string::npos);
  // And one changed before is refused before any command, as with a spool.
  given = 0;
  st = forEachCommand(*open, [&](json&) { return ++given > 0; });
  REQUIRE_FALSE(st);
  CHECK(given == 0);
  CHECK(st.error().message == path.string() + ": the file changed after it was validated; nothing was run");
}

}  // namespace
}  // namespace runrec::runner
