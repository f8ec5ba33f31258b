// bus::dumpJson must write exactly what nlohmann's dump(-1, ' ', false, replace) writes:
// the log, live events and bus frames all hold its text, and readers compare it.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include "runrec/bus/message.hpp"

using nlohmann::json;

namespace {

std::string reference(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string ours(const json& j) {
  std::string out = "prefix:";  // appends, never replaces
  runrec::bus::dumpJson(j, out);
  REQUIRE(out.rfind("prefix:", 0) == 0);
  return out.substr(7);
}

json randomValue(std::mt19937_64& rng, int depth) {
  std::uniform_int_distribution<int> kind(0, depth > 3 ? 5 : 7);
  switch (kind(rng)) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<std::int64_t>(rng());
    case 3: return static_cast<std::uint64_t>(rng());
    case 4: {
      // Doubles of every magnitude, including the ones nlohmann prints in exponent form.
      std::uniform_real_distribution<double> mant(-10, 10);
      std::uniform_int_distribution<int> exp(-30, 30);
      return mant(rng) * std::pow(10.0, exp(rng));
    }
    case 5: {
      static const char* kPieces[] = {"a", "H12", " ", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f", "\x7f",
                                      "é", "✓", "\xff", "\xc3", "touchTip", "😀", ""};
      std::string s;
      int n = static_cast<int>(rng() % 6);
      for (int i = 0; i < n; ++i) s += kPieces[rng() % (sizeof kPieces / sizeof *kPieces)];
      return s;
    }
    case 6: {
      json a = json::array();
      int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) a.push_back(randomValue(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) {
        json key = randomValue(rng, 99);  // a string or scalar: use its text as the key
        o[key.is_string() ? key.get<std::string>() : key.dump()] = randomValue(rng, depth + 1);
      }
      return o;
    }
  }
}

}  // namespace

TEST_CASE("dumpJson writes what nlohmann writes: edge cases") {
  const double kDoubles[] = {0.0, -0.0, 1.0, -1.0, 0.1, 245.88, 1e15, 1e16, 1e-4, 1e-5, 123456789012345678.0,
                             std::numeric_limits<double>::max(), std::numeric_limits<double>::min(),
                             std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(), std::nan("")};
  for (double d : kDoubles) CHECK(ours(json(d)) == reference(json(d)));
  const json kValues[] = {
      nullptr, true, false, 0, -1, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(),
      std::numeric_limits<std::uint64_t>::max(), "", "plain", "quote\"", "back\\slash", "new\nline", "\x01\x1f\x7f",
      "caf\xc3\xa9", "bad \xff utf8", "truncated \xc3", json::array(), json::object(), json::array({json::array()}),
      json{{"a", json::object()}, {"b", json::array({1, 2.5, "x"})}}, json{{"k\"ey", 1}, {"\xff", 2}, {"é", 3}},
      json::binary({1, 2, 3})};
  for (const auto& v : kValues) CHECK(ours(v) == reference(v));
}

TEST_CASE("dumpJson writes what nlohmann writes: a command's events and random values") {
  json started = {{"commandId", "c10"},
                  {"commandType", "touchTip"},
                  {"index", 10},
                  {"intent", "protocol"},
                  {"params",
                   {{"labwareId", "plate"},
                    {"pipetteId", "pipette"},
                    {"wellLocation", {{"offset", {{"x", 0}, {"y", 0}, {"z", -1}}}, {"origin", "top"}}},
                    {"wellName", "H12"}}}};
  CHECK(ours(started) == reference(started));
  json done = {{"commandId", "c9"}, {"result", {{"position", {{"x", 245.88}, {"y", 11.24}, {"z", 15.06}}}}}};
  CHECK(ours(done) == reference(done));

  std::mt19937_64 rng(20261126);
  int differ = 0;
  for (int i = 0; i < 20000; ++i) {
    json v = randomValue(rng, 0);
    if (ours(v) != reference(v)) {
      if (++differ <= 3) CHECK(ours(v) == reference(v));
    }
  }
  CHECK(differ == 0);
}
