// Wire encoding of bus messages: one JSON object per ZeroMQ frame (docs/wire-protocol.md).
// encode() writes the envelope by hand (only the body goes through nlohmann); decode() parses
// with a strict hand-written parser (about 3x faster than nlohmann::json::parse, which was the
// bottleneck on the hot path) and checks every envelope field, naming the first bad one.
#include "runrec/bus/message.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <string>
#include <utility>

#include "wire.hpp"

namespace runrec::bus {

namespace {

constexpr int kWireVersion = 1;

constexpr std::array<std::pair<MessageType, std::string_view>, 7> kTypeNames{{
    {MessageType::kOpen, "open"},
    {MessageType::kCommand, "command"},
    {MessageType::kEnd, "end"},
    {MessageType::kOpened, "opened"},
    {MessageType::kOutcome, "outcome"},
    {MessageType::kFinished, "finished"},
    {MessageType::kRefused, "refused"},
}};

std::string_view typeName(MessageType type) {
  for (const auto& [t, name] : kTypeNames) {
    if (t == type) return name;
  }
  return "unknown";
}

void dumpJsonTo(const nlohmann::json& value, std::string& out);

const std::string& dumpOrReplace(const nlohmann::json& value, std::string& out) {
  out.clear();
  dumpJsonTo(value, out);
  return out;
}

// nlohmann's own rendering of one value: dump(-1, ' ', false, replace), where invalid UTF-8
// becomes U+FFFD instead of throwing.
void appendNlohmann(const nlohmann::json& value, std::string& out) {
  out += value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Appends `s` as a JSON string literal, as nlohmann writes it. Plain ASCII (no control
// characters, quotes or backslashes: run ids, keys, command types) is copied directly;
// anything else goes through nlohmann.
void appendJsonString(std::string& out, std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return appendNlohmann(nlohmann::json(std::string(s)), out);
  out += '"';
  out += s;
  out += '"';
}

// The same text as appendNlohmann, without its per-character escaping state machine and
// per-call output adapter: the engine encodes every event's payload, and nlohmann's dump
// was ~10k instructions per event. Strings that need escaping or hold non-ASCII bytes, and
// binary values, still go through nlohmann, so the output is byte-identical (tested).
void dumpJsonTo(const nlohmann::json& value, std::string& out) {
  using T = nlohmann::json::value_t;
  switch (value.type()) {
    case T::null:
      out += "null";
      return;
    case T::boolean:
      out += value.get_ref<const bool&>() ? "true" : "false";
      return;
    case T::number_integer:
    case T::number_unsigned: {
      char buf[24];
      auto r = value.type() == T::number_integer
                   ? std::to_chars(buf, buf + sizeof buf, value.get_ref<const nlohmann::json::number_integer_t&>())
                   : std::to_chars(buf, buf + sizeof buf, value.get_ref<const nlohmann::json::number_unsigned_t&>());
      out.append(buf, r.ptr);
      return;
    }
    case T::number_float: {
      const double x = value.get_ref<const double&>();
      if (!std::isfinite(x)) {
        out += "null";
        return;
      }
      std::array<char, 64> buf;  // nlohmann's serializer: the same buffer and the same function
      char* end = nlohmann::detail::to_chars(buf.data(), buf.data() + buf.size(), x);
      out.append(buf.data(), end);
      return;
    }
    case T::string:
      return appendJsonString(out, value.get_ref<const std::string&>());
    case T::array: {
      out += '[';
      bool first = true;
      for (const auto& v : value.get_ref<const nlohmann::json::array_t&>()) {
        if (!first) out += ',';
        first = false;
        dumpJsonTo(v, out);
      }
      out += ']';
      return;
    }
    case T::object: {
      out += '{';
      bool first = true;
      for (const auto& [k, v] : value.get_ref<const nlohmann::json::object_t&>()) {
        if (!first) out += ',';
        first = false;
        appendJsonString(out, k);
        out += ':';
        dumpJsonTo(v, out);
      }
      out += '}';
      return;
    }
    default:  // binary, discarded
      return appendNlohmann(value, out);
  }
}


// A short rendering of an offending value for error messages.
std::string show(const nlohmann::json& value) {
  std::string s;
  dumpOrReplace(value, s);
  constexpr std::size_t kMax = 60;
  if (s.size() > kMax) {
    s.resize(kMax);
    s += "...";
  }
  return s;
}

Error malformed(std::string what) { return Error{ErrorCode::kMalformed, "bus message: " + what}; }

Error fieldError(std::string_view field, std::string_view expected, const nlohmann::json& got) {
  std::string m = "\"";
  m += field;
  m += "\": expected ";
  m += expected;
  m += ", got ";
  m += show(got);
  return malformed(std::move(m));
}

std::string allTypeNames() {
  std::string s;
  for (const auto& [t, name] : kTypeNames) {
    if (!s.empty()) s += ", ";
    s += name;
  }
  return s;
}


// ---------------------------------------------------------------------------------------
// The JSON parser: recursive descent over a byte range, building nlohmann::json in place.

constexpr int kMaxDepth = 256;

class Parser {
 public:
  explicit Parser(std::string_view text)
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

  bool parse(nlohmann::json& out, std::string& error) {
    // A UTF-8 byte order mark is skipped, as nlohmann does.
    if (end_ - p_ >= 3 && static_cast<unsigned char>(p_[0]) == 0xEF &&
        static_cast<unsigned char>(p_[1]) == 0xBB && static_cast<unsigned char>(p_[2]) == 0xBF) {
      p_ += 3;
    }
    bool ok = value(out);
    if (ok) {
      ws();
      if (p_ != end_) ok = fail("unexpected data after the JSON value");
    }
    if (!ok) error = error_ + " at byte " + std::to_string(errorAt_);
    return ok;
  }

  // The envelope of a well-formed frame, read straight into `m` (no JSON object is built for
  // it; only the body is): {"v":1,"type":T,"runId":S,"seq":N,"replyTo"?:S,"body":{...}} in
  // any order, each member once. False for anything else, including frames the checked
  // decoder would accept (a repeated member, a byte order mark), which then decides.
  bool envelope(Message& m, std::string* replyTo) {
    enum : unsigned { kV = 1, kType = 2, kRunId = 4, kSeq = 8, kBody = 16, kReplyTo = 32 };
    unsigned seen = 0;
    std::string key, text, reply;
    nlohmann::json scalar;
    ws();
    if (p_ == end_ || *p_ != '{') return false;
    ++p_;
    ++depth_;
    for (;;) {
      ws();
      if (p_ == end_ || *p_ != '"') return false;
      key.clear();
      if (!string(key)) return false;
      ws();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      ws();
      if (p_ == end_) return false;
      unsigned bit = 0;
      if (key == "v") {
        bit = kV;
        if (!value(scalar) || !scalar.is_number_integer() || scalar.get<std::int64_t>() != kWireVersion) return false;
      } else if (key == "type") {
        bit = kType;
        text.clear();
        if (*p_ != '"' || !string(text)) return false;
        bool known = false;
        for (const auto& [t, name] : kTypeNames) {
          if (name == text) {
            m.type = t;
            known = true;
            break;
          }
        }
        if (!known) return false;
      } else if (key == "runId") {
        bit = kRunId;
        m.runId.clear();
        if (*p_ != '"' || !string(m.runId)) return false;
      } else if (key == "seq") {
        bit = kSeq;
        if (!value(scalar) || !scalar.is_number_unsigned()) return false;
        m.seq = scalar.get<std::uint64_t>();
      } else if (key == "body") {
        bit = kBody;
        if (*p_ != '{' || !value(m.body)) return false;
      } else if (key == "replyTo") {
        bit = kReplyTo;
        if (*p_ != '"' || !string(reply) || reply.empty() || reply.size() > 255 || reply[0] == '\0') return false;
      } else {
        return false;
      }
      if (seen & bit) return false;
      seen |= bit;
      ws();
      if (p_ == end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ != '}') return false;
      ++p_;
      break;
    }
    ws();
    if (p_ != end_) return false;
    if ((seen & (kV | kType | kRunId | kSeq | kBody)) != (kV | kType | kRunId | kSeq | kBody)) return false;
    if ((seen & kReplyTo) && m.type != MessageType::kOpen) return false;
    if (replyTo) *replyTo = std::move(reply);  // empty when absent
    return true;
  }

 private:
  bool fail(const char* what) {
    error_ = what;
    errorAt_ = static_cast<std::size_t>(p_ - begin_);
    return false;
  }

  void ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::string_view(p_, word.size()) != word) {
      return fail("invalid literal");
    }
    p_ += word.size();
    return true;
  }

  bool value(nlohmann::json& out) {
    ws();
    if (p_ == end_) return fail("unexpected end of input");
    switch (*p_) {
      case '{': return object(out);
      case '[': return array(out);
      case '"': {
        std::string s;
        if (!string(s)) return false;
        out = std::move(s);
        return true;
      }
      case 't':
        if (!literal("true")) return false;
        out = true;
        return true;
      case 'f':
        if (!literal("false")) return false;
        out = false;
        return true;
      case 'n':
        if (!literal("null")) return false;
        out = nullptr;
        return true;
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return number(out);
        return fail("unexpected character");
    }
  }

  bool object(nlohmann::json& out) {
    if (++depth_ > kMaxDepth) return fail("nested too deeply");
    ++p_;  // '{'
    out = nlohmann::json::object();
    auto& members = *out.get_ptr<nlohmann::json::object_t*>();
    ws();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      --depth_;
      return true;
    }
    std::string key;
    for (;;) {
      ws();
      if (p_ == end_ || *p_ != '"') return fail("expected a string key");
      key.clear();
      if (!string(key)) return false;
      ws();
      if (p_ == end_ || *p_ != ':') return fail("expected ':'");
      ++p_;
      // Keys usually arrive sorted (nlohmann writes them so): a hint at the end makes each
      // insertion O(1). A repeated key: the last one wins, as with nlohmann.
      auto it = members.emplace_hint(members.end(), key, nullptr);
      if (!value(it->second)) return false;
      ws();
      if (p_ == end_) return fail("unexpected end of input in an object");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == '}') {
        ++p_;
        --depth_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  bool array(nlohmann::json& out) {
    if (++depth_ > kMaxDepth) return fail("nested too deeply");
    ++p_;  // '['
    out = nlohmann::json::array();
    auto& items = *out.get_ptr<nlohmann::json::array_t*>();
    ws();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      --depth_;
      return true;
    }
    for (;;) {
      items.emplace_back();
      if (!value(items.back())) return false;
      ws();
      if (p_ == end_) return fail("unexpected end of input in an array");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == ']') {
        ++p_;
        --depth_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  static int hexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Reads the 4 hex digits after "\u"; p_ is on the 'u'.
  bool hex4(unsigned& cp) {
    if (end_ - p_ < 5) return fail("truncated \\u escape");
    cp = 0;
    for (int i = 1; i <= 4; ++i) {
      int d = hexDigit(p_[i]);
      if (d < 0) return fail("invalid \\u escape");
      cp = cp * 16 + static_cast<unsigned>(d);
    }
    p_ += 5;
    return true;
  }

  static void appendUtf8(std::string& s, unsigned cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // Length of the valid UTF-8 sequence at p_ (lead byte >= 0x80), or 0 if invalid
  // (overlong forms, surrogates and code points above U+10FFFF are invalid).
  std::size_t utf8Sequence() const {
    auto b = [&](std::ptrdiff_t i) { return static_cast<unsigned char>(p_[i]); };
    auto cont = [&](std::ptrdiff_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
      return p_ + i < end_ && b(i) >= lo && b(i) <= hi;
    };
    unsigned char c = b(0);
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
    if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
    if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
    if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
    if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    return 0;
  }

  // Bytes a string can hold as they are: printable ASCII but '"' and '\\'.
  static constexpr std::array<bool, 256> kPlainTable = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
    return t;
  }();
  static bool plain(char c) { return kPlainTable[static_cast<unsigned char>(c)]; }

  // p_ is on the opening quote.
  bool string(std::string& s) {
    ++p_;
    for (;;) {
      const char* run = p_;
      // Four bytes a step while there are four left (one table load and test per byte).
      while (end_ - p_ >= 4 && plain(p_[0]) && plain(p_[1]) && plain(p_[2]) && plain(p_[3])) p_ += 4;
      while (p_ != end_ && plain(*p_)) ++p_;
      s.append(run, p_);
      if (p_ == end_) return fail("unterminated string");
      auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return fail("control character in a string (must be escaped)");
      if (c >= 0x80) {
        std::size_t n = utf8Sequence();
        if (n == 0) return fail("invalid UTF-8 in a string");
        s.append(p_, n);
        p_ += n;
        continue;
      }
      // A backslash escape.
      if (end_ - p_ < 2) return fail("unterminated string");
      ++p_;
      switch (*p_) {
        case '"': s += '"'; ++p_; break;
        case '\\': s += '\\'; ++p_; break;
        case '/': s += '/'; ++p_; break;
        case 'b': s += '\b'; ++p_; break;
        case 'f': s += '\f'; ++p_; break;
        case 'n': s += '\n'; ++p_; break;
        case 'r': s += '\r'; ++p_; break;
        case 't': s += '\t'; ++p_; break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') {
              return fail("high surrogate not followed by a low surrogate");
            }
            ++p_;
            unsigned lo = 0;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          appendUtf8(s, cp);
          break;
        }
        default: return fail("invalid escape in a string");
      }
    }
  }

  bool number(nlohmann::json& out) {
    const char* start = p_;
    bool negative = false;
    if (*p_ == '-') {
      negative = true;
      ++p_;
    }
    auto digit = [&] { return p_ != end_ && *p_ >= '0' && *p_ <= '9'; };
    if (!digit()) return fail("invalid number");
    if (*p_ == '0') {
      ++p_;
    } else {
      while (digit()) ++p_;
    }
    bool integral = true;
    if (p_ != end_ && *p_ == '.') {
      integral = false;
      ++p_;
      if (!digit()) return fail("invalid number: expected a digit after '.'");
      while (digit()) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integral = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digit()) return fail("invalid number: expected a digit in the exponent");
      while (digit()) ++p_;
    }
    // nlohmann's representation: non-negative integers unsigned, negative ones signed, and
    // integers too large for 64 bits as floating point.
    if (integral) {
      if (negative) {
        std::int64_t v = 0;
        auto [ptr, ec] = std::from_chars(start, p_, v);
        if (ec == std::errc() && ptr == p_) {
          out = v;
          return true;
        }
      } else {
        std::uint64_t v = 0;
        auto [ptr, ec] = std::from_chars(start, p_, v);
        if (ec == std::errc() && ptr == p_) {
          out = v;
          return true;
        }
      }
    }
    double d = 0;
    auto [ptr, ec] = std::from_chars(start, p_, d);
    if (ec == std::errc::result_out_of_range) {
      // Overflow is an error (JSON has no infinity); underflow is read as strtod reads it.
      std::string token(start, p_);
      errno = 0;
      char* endp = nullptr;
      d = std::strtod(token.c_str(), &endp);
      if (endp != token.c_str() + token.size() || !std::isfinite(d)) {
        p_ = start;
        return fail("number out of range");
      }
    } else if (ec != std::errc() || ptr != p_) {
      p_ = start;
      return fail("invalid number");
    }
    out = d;
    return true;
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  int depth_ = 0;
  std::string error_;
  std::size_t errorAt_ = 0;
};

}  // namespace

namespace detail {

bool parseJson(std::string_view text, nlohmann::json& out, std::string& error) {
  Parser parser(text);
  return parser.parse(out, error);
}

void appendFrame(std::string& out, MessageType type, const std::string& runId, std::uint64_t seq,
                 std::string_view replyTo, std::string_view bodyJson) {
  out.reserve(out.size() + 64 + runId.size() + replyTo.size() + bodyJson.size());
  out += R"({"v":1,"type":")";
  out += typeName(type);
  out += R"(","runId":)";
  appendJsonString(out, runId);
  out += R"(,"seq":)";
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, seq);
  (void)ec;  // 24 chars always hold a uint64
  out.append(digits, end);
  if (!replyTo.empty()) {
    out += R"(,"replyTo":)";
    appendJsonString(out, replyTo);
  }
  out += R"(,"body":)";
  if (bodyJson.empty()) {
    out += "{}";
  } else {
    out += bodyJson;
  }
  out += '}';
}

std::string encodeFrame(const Message& message, std::string_view replyTo) {
  std::string body;
  if (!message.body.is_null()) dumpOrReplace(message.body, body);
  std::string out;
  appendFrame(out, message.type, message.runId, message.seq, replyTo, body);
  return out;
}

Result<Message> decodeFrame(std::string_view frame, std::string* replyToOut) {
  // The usual case first: a well-formed frame read in one pass, no envelope object built.
  // Anything else goes through the checked decoder below, which names the problem.
  try {
    Message m;
    Parser parser(frame);
    if (parser.envelope(m, replyToOut)) return m;
  } catch (const std::exception&) {
    // Only std::bad_alloc can get here; the checked decoder below reports it.
  }
  return decodeFrameChecked(frame, replyToOut);
}

Result<Message> decodeFrameChecked(std::string_view frame, std::string* replyToOut) {
  try {
    nlohmann::json j;
    std::string parseError;
    if (!parseJson(frame, j, parseError)) {
      return tl::unexpected(malformed("not JSON (" + parseError + " of " +
                                      std::to_string(frame.size()) + ")"));
    }
    if (!j.is_object()) {
      return tl::unexpected(malformed(std::string("expected a JSON object, got ") + j.type_name()));
    }
    const nlohmann::json* v = nullptr;
    const nlohmann::json* type = nullptr;
    const nlohmann::json* runId = nullptr;
    const nlohmann::json* seq = nullptr;
    const nlohmann::json* replyTo = nullptr;
    nlohmann::json* body = nullptr;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      if (key == "v") {
        v = &*it;
      } else if (key == "type") {
        type = &*it;
      } else if (key == "runId") {
        runId = &*it;
      } else if (key == "seq") {
        seq = &*it;
      } else if (key == "body") {
        body = &*it;
      } else if (key == "replyTo") {
        replyTo = &*it;
      } else {
        return tl::unexpected(malformed("unknown field " + show(nlohmann::json(key))));
      }
    }
    // The version first: a future version may change every other field.
    if (!v) return tl::unexpected(malformed("\"v\": missing"));
    if (!v->is_number_integer()) return tl::unexpected(fieldError("v", "the integer 1", *v));
    if (v->get<std::int64_t>() != kWireVersion) {
      return tl::unexpected(malformed("\"v\": unsupported version " + show(*v) +
                                      " (this build speaks version 1)"));
    }
    Message m;
    if (!type) return tl::unexpected(malformed("\"type\": missing"));
    if (!type->is_string()) return tl::unexpected(fieldError("type", "a string", *type));
    {
      const auto& name = type->get_ref<const std::string&>();
      bool known = false;
      for (const auto& [t, n] : kTypeNames) {
        if (n == name) {
          m.type = t;
          known = true;
          break;
        }
      }
      if (!known) {
        return tl::unexpected(malformed("\"type\": unknown message type " + show(*type) +
                                        " (expected one of " + allTypeNames() + ")"));
      }
    }
    if (!runId) return tl::unexpected(malformed("\"runId\": missing"));
    if (!runId->is_string()) return tl::unexpected(fieldError("runId", "a string", *runId));
    m.runId = runId->get<std::string>();
    if (!seq) return tl::unexpected(malformed("\"seq\": missing"));
    if (!seq->is_number_unsigned()) {
      // Every non-negative integer literal is stored as unsigned; anything else (negative,
      // fractional, too large, string, ...) is wrong.
      return tl::unexpected(fieldError("seq", "a non-negative integer", *seq));
    }
    m.seq = seq->get<std::uint64_t>();
    if (replyTo) {
      if (m.type != MessageType::kOpen) {
        return tl::unexpected(malformed("\"replyTo\": only allowed on an open message"));
      }
      if (!replyTo->is_string() || replyTo->get_ref<const std::string&>().empty() ||
          replyTo->get_ref<const std::string&>().size() > 255 ||
          replyTo->get_ref<const std::string&>()[0] == '\0') {
        return tl::unexpected(fieldError(
            "replyTo", "a string of 1..255 bytes not starting with a NUL", *replyTo));
      }
      if (replyToOut) *replyToOut = replyTo->get<std::string>();
    } else if (replyToOut) {
      replyToOut->clear();
    }
    if (!body) return tl::unexpected(malformed("\"body\": missing"));
    if (!body->is_object()) return tl::unexpected(fieldError("body", "an object", *body));
    m.body = std::move(*body);
    return m;
  } catch (const std::exception& e) {
    // Not expected (every access above is type-checked), but decode never throws.
    return tl::unexpected(malformed(std::string("could not decode: ") + e.what()));
  }
}

}  // namespace detail

const char* toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidEndpoint: return "invalid endpoint";
    case ErrorCode::kMalformed: return "malformed";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kClosed: return "closed";
    case ErrorCode::kRejected: return "rejected";
    case ErrorCode::kIo: return "io";
  }
  return "unknown";
}

const char* toString(MessageType type) { return typeName(type).data(); }

std::string encode(const Message& message) { return detail::encodeFrame(message, {}); }

Result<Message> decode(std::string_view frame) { return detail::decodeFrame(frame, nullptr); }

bool parseJson(std::string_view text, nlohmann::json& out, std::string& error) {
  return detail::parseJson(text, out, error);
}

void dumpJson(const nlohmann::json& value, std::string& out) { dumpJsonTo(value, out); }

}  // namespace runrec::bus
