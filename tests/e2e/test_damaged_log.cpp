// Damaged log files, as a user meets them: `runrec runs`, `show`, `run` and `audit` on a
// truncated real log, one with bytes flipped in its header, and a file that is not SQLite.
// Each must exit 2 with a message naming the file and the problem, never crash, and leave
// the file as it was.
#include <doctest/doctest.h>

#include <fstream>

#include "pipeline_support.hpp"
#include "support.hpp"

using namespace runrec;

namespace {

std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::string bytes(const std::filesystem::path& p) { return test::readText(p); }

// A real log with one finished run, checkpointed into the main file.
std::filesystem::path realLog(const std::filesystem::path& dir, const std::filesystem::path& protocol) {
  auto db = dir / "real.db";
  auto r = test::runrec("run " + q(protocol) + " --db " + q(db));
  REQUIRE_MESSAGE(r.exitCode == 0, r.err);
  REQUIRE_FALSE(std::filesystem::exists(dir / "real.db-wal"));  // the engine checkpoints on close
  return db;
}

}  // namespace

TEST_CASE("damaged logs: runs, show, run and audit exit 2 naming the file and the problem") {
  auto dir = test::tempDir("damaged");
  auto protocol = dir / "seed.json";
  REQUIRE(test::runrec("seed -n 400 -o " + q(protocol)).exitCode == 0);
  auto real = realLog(dir, protocol);
  auto size = std::filesystem::file_size(real);
  REQUIRE(size > 4 * 4096);

  struct Case {
    const char* name;
    std::filesystem::path db;
    const char* problem;  // expected in the message
  };
  std::vector<Case> cases;
  {
    auto db = dir / "truncated.db";  // cut in the middle of its pages
    std::filesystem::copy_file(real, db);
    std::filesystem::resize_file(db, size / 2 + 100);
    cases.push_back({"truncated", db, "damaged"});
  }
  {
    auto db = dir / "header.db";  // the SQLite magic string overwritten
    std::filesystem::copy_file(real, db);
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.write("\x53\x51\x4c\x69\x74\x66\x00\xff", 8);
    cases.push_back({"header bytes flipped", db, "not an SQLite database"});
  }
  {
    auto db = dir / "pagesize.db";  // a page size that is not a power of two
    std::filesystem::copy_file(real, db);
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(16);
    f.write("\x12\x34", 2);
    cases.push_back({"page size bytes flipped", db, "not an SQLite database"});
  }
  {
    auto db = dir / "notes.db";
    std::ofstream(db) << std::string(5000, 'z');
    cases.push_back({"not SQLite", db, "not an SQLite database"});
  }
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string before = bytes(c.db);
    for (const std::string& cmd : std::vector<std::string>{"runs", "show last", "run " + q(protocol), "audit last"}) {
      CAPTURE(cmd);
      auto r = test::runrec(cmd + " --db " + q(c.db));
      CHECK(r.exitCode == 2);
      CHECK(r.err.find(c.db.string()) != std::string::npos);
      CHECK(r.err.find(c.problem) != std::string::npos);
      CHECK(r.err.find("internal error") == std::string::npos);
      MESSAGE(r.err);
    }
    CHECK(bytes(c.db) == before);  // never modified
  }
}
