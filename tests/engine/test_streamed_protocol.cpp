// A streamed protocol's text reaches the log from its file (EventLog::createRunFromFile):
// the same bytes, checked against the runner's digest.
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include <fstream>

#include "runrec/engine/event_log.hpp"
#include "support.hpp"

using namespace runrec::engine;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string sha256Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string typeOfContent(const fs::path& db) {
  sqlite3* h = nullptr;
  sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(h, "SELECT typeof(content) FROM protocols", -1, &st, nullptr);
  std::string out = sqlite3_step(st) == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0)) : "";
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

// A protocol-like text of `bytes` bytes (the log does not parse it).
std::string text(std::size_t bytes) {
  std::string out = "{\"commands\":[";
  while (out.size() + 40 < bytes) out += "{\"commandType\":\"comment\",\"n\":" + std::to_string(out.size()) + "},";
  out += "{}]}";
  return out;
}

void storeAndCheck(std::size_t bytes, const std::string& expectedType) {
  auto dir = runrec::test::tempDir("streamed-protocol");
  const std::string body = text(bytes);
  const fs::path file = dir / "big.json";
  std::ofstream(file, std::ios::binary) << body;
  auto log = EventLog::open(dir / "log.db");
  REQUIRE(log);
  REQUIRE((*log)->begin());
  auto st = (*log)->createRunFromFile({"run-1", nowTimestamp(), "big", sha256Hex(body), "sim"}, "big.json", file);
  REQUIRE_MESSAGE(st.has_value(), (st ? "" : st.error().message));
  REQUIRE((*log)->commit());
  auto stored = (*log)->protocolText(sha256Hex(body));
  REQUIRE(stored);
  CHECK(stored->size() == body.size());
  CHECK(*stored == body);
  CHECK(typeOfContent(dir / "log.db") == expectedType);
}

}  // namespace

TEST_CASE("a streamed protocol's file is stored byte for byte: TEXT up to 8 MiB, a BLOB beyond") {
  storeAndCheck(100'000, "text");
  storeAndCheck((9u << 20) + 123, "blob");
}

TEST_CASE("a streamed protocol whose file does not match the runner's digest is refused, nothing stored") {
  auto dir = runrec::test::tempDir("streamed-protocol-mismatch");
  for (std::size_t bytes : {std::size_t{1000}, std::size_t{(9u << 20)}}) {
    CAPTURE(bytes);
    const fs::path file = dir / "p.json";
    std::ofstream(file, std::ios::binary) << text(bytes);
    auto log = EventLog::open(dir / ("log" + std::to_string(bytes) + ".db"));
    REQUIRE(log);
    REQUIRE((*log)->begin());
    auto st = (*log)->createRunFromFile({"run-1", nowTimestamp(), "p", sha256Hex("something else"), "sim"}, "p.json", file);
    REQUIRE_FALSE(st);
    CHECK(st.error().message.find("is not the one the runner validated") != std::string::npos);
    REQUIRE((*log)->rollback());
    CHECK((*log)->runs()->empty());
    CHECK_FALSE((*log)->protocolText(sha256Hex("something else")));
  }
  auto log = EventLog::open(dir / "missing.db");
  REQUIRE(log);
  REQUIRE((*log)->begin());
  auto st = (*log)->createRunFromFile({"run-1", nowTimestamp(), "p", "00", "sim"}, "p.json", dir / "nope.json");
  REQUIRE_FALSE(st);
  CHECK(st.error().message.find("cannot read the protocol file") != std::string::npos);
}
