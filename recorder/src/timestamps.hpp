// Reading the log's timestamps and JSON fields defensively (private to the recorder).
#pragma once

#include <cmath>
#include <cstdio>
#include <ctime>
#include <string>

namespace runrec::recorder::detail {

// "2026-11-25T21:47:16.123456Z" -> seconds since the epoch; NaN if it does not parse.
inline double epochSeconds(const std::string& t) {
  std::tm tm{};
  int us = 0;
  if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &us) < 6)
    return NAN;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(timegm(&tm)) + us / 1e6;
}

}  // namespace runrec::recorder::detail

#include <nlohmann/json.hpp>

namespace runrec::recorder::detail {

// j[key] when it is a string, else `dflt` (never throws: recorded data may be odd).
inline std::string text(const nlohmann::json& j, const char* key, const std::string& dflt = {}) {
  if (!j.is_object()) return dflt;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : dflt;
}

// j[key] when it is a number, else `dflt`.
inline double number(const nlohmann::json& j, const char* key, double dflt = 0) {
  if (!j.is_object()) return dflt;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : dflt;
}

}  // namespace runrec::recorder::detail
