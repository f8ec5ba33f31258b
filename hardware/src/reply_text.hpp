// Text helpers shared by the serial drivers (Smoothie and modules): checking and quoting
// what a board answered.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <string_view>

namespace runrec::hardware::detail {

inline bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

inline bool containsNoCase(std::string_view s, std::string_view word) {
  auto it = std::search(s.begin(), s.end(), word.begin(), word.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != s.end();
}

// Only printable ASCII, CR and LF.
inline bool printable(std::string_view s) {
  for (unsigned char c : s)
    if (!((c >= 0x20 && c < 0x7f) || c == '\r' || c == '\n')) return false;
  return true;
}

// `s` with CR, LF and non-printable bytes written as \r, \n, \xNN: safe in a message.
inline std::string escaped(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace runrec::hardware::detail
