// The fingerprint hash chain and `runrec verify`. Reads the stored bytes directly (not the
// parsed events) so that any change to what is stored changes the chain.
#include "runrec/recorder/fingerprint.hpp"

#include <openssl/evp.h>
#include <sqlite3.h>

#include <array>
#include <memory>
#include <set>
#include <sstream>

#include "runrec/engine/state.hpp"

#include "timestamps.hpp"

namespace runrec::recorder {

using engine::ErrorCode;
using nlohmann::json;

namespace {

struct RawEvent {
  std::int64_t seq = 0;
  std::string type, ts, commandId, payload;
  bool commandIdNull = true;
};

struct RawRun {
  std::string runId, createdAt, protocolName, protocolSha256, robot;
  std::optional<std::string> protocolText;
  std::vector<RawEvent> events;
};

std::string column(sqlite3_stmt* st, int i) {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st, i))) : std::string();
}

// Reads a run's row, protocol text and events exactly as stored, on a connection of its own.
engine::Result<RawRun> readRaw(const std::filesystem::path& path, const std::string& runId) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
  if (rc != SQLITE_OK) return engine::fail(ErrorCode::kIo, path.string() + ": cannot open: " + sqlite3_errstr(rc));
  auto query = [&](const char* sql, auto&& onRow) -> engine::Status {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql, -1, &st, nullptr) != SQLITE_OK)
      return engine::fail(ErrorCode::kCorrupt, path.string() + ": " + sqlite3_errmsg(db.get()));
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, sqlite3_finalize);
    sqlite3_bind_text(st, 1, runId.c_str(), -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) onRow(st);
    if (rc != SQLITE_DONE) return engine::fail(ErrorCode::kCorrupt, path.string() + ": " + sqlite3_errmsg(db.get()));
    return {};
  };
  RawRun run;
  bool found = false;
  auto st = query("SELECT run_id, created_at, protocol_name, protocol_sha256, robot, "
                  "(SELECT content FROM protocols p WHERE p.sha256 = r.protocol_sha256), "
                  "(SELECT count(*) FROM protocols p WHERE p.sha256 = r.protocol_sha256) "
                  "FROM runs r WHERE run_id = ?1",
                  [&](sqlite3_stmt* s) {
                    found = true;
                    run.runId = column(s, 0);
                    run.createdAt = column(s, 1);
                    run.protocolName = column(s, 2);
                    run.protocolSha256 = column(s, 3);
                    run.robot = column(s, 4);
                    if (sqlite3_column_int(s, 6) > 0) run.protocolText = column(s, 5);
                  });
  if (!st) return tl::unexpected(st.error());
  if (!found) return engine::fail(ErrorCode::kNotFound, "no run " + runId + " in " + path.string());
  st = query("SELECT seq, type, ts, command_id, payload FROM events WHERE run_id = ?1 ORDER BY seq",
             [&](sqlite3_stmt* s) {
               RawEvent e;
               e.seq = sqlite3_column_int64(s, 0);
               e.type = column(s, 1);
               e.ts = column(s, 2);
               e.commandIdNull = sqlite3_column_type(s, 3) == SQLITE_NULL;
               e.commandId = column(s, 3);
               e.payload = column(s, 4);
               run.events.push_back(std::move(e));
             });
  if (!st) return tl::unexpected(st.error());
  return run;
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(const void* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
  // frame(x) = 8-byte big-endian length of x, then x.
  void frame(std::string_view s) {
    unsigned char len[8];
    std::uint64_t n = s.size();
    for (int i = 7; i >= 0; --i, n >>= 8) len[i] = static_cast<unsigned char>(n & 0xff);
    update(len, 8);
    update(s.data(), s.size());
  }
  std::array<unsigned char, 32> digest() {
    std::array<unsigned char, 32> out{};
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), out.data(), &n);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

std::string hex(const std::array<unsigned char, 32>& d) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned char c : d) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

std::string sha256Hex(std::string_view text) {
  Sha256 h;
  h.update(text.data(), text.size());
  return hex(h.digest());
}

Fingerprint chainOf(const RawRun& run) {
  Fingerprint fp;
  Sha256 h0;
  h0.frame(kFingerprintAlgorithm);
  for (auto* s : {&run.runId, &run.createdAt, &run.protocolName, &run.protocolSha256, &run.robot}) h0.frame(*s);
  h0.frame(run.protocolText.value_or(""));
  auto prev = h0.digest();
  fp.head = hex(prev);
  fp.chain.reserve(run.events.size());
  for (auto& e : run.events) {
    Sha256 h;
    h.update(prev.data(), prev.size());
    h.frame(std::to_string(e.seq));
    h.frame(e.type);
    h.frame(e.ts);
    h.frame(e.commandId);
    h.frame(e.payload);
    prev = h.digest();
    fp.chain.push_back(hex(prev));
  }
  return fp;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

engine::Result<Fingerprint> fingerprint(const engine::EventLog& log, const std::string& runId) {
  auto run = readRaw(log.path(), runId);
  if (!run) return tl::unexpected(run.error());
  return chainOf(*run);
}

json fingerprintJson(const Fingerprint& fp) {
  return {{"algorithm", kFingerprintAlgorithm}, {"events", fp.events()}, {"sha256", fp.hex()}};
}

engine::Result<std::vector<std::pair<std::int64_t, std::string>>> parseExportedChain(const std::string& text) {
  std::vector<std::pair<std::int64_t, std::string>> out;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("seq") || !j["seq"].is_number_integer() ||
        !j.contains("hash") || !j["hash"].is_string())
      return engine::fail(ErrorCode::kInvalid, "line " + std::to_string(n) +
                                                   ": expected a JSON object with integer \"seq\" and string \"hash\" "
                                                   "(runrec export --format ndjson)");
    out.emplace_back(j["seq"].get<std::int64_t>(), lower(j["hash"].get<std::string>()));
  }
  return out;
}

namespace {

engine::Result<json> verifyRunImpl(engine::EventLog& log, const std::string& runId, const VerifyOptions& options) {
  auto run = readRaw(log.path(), runId);
  if (!run) return tl::unexpected(run.error());
  Fingerprint fp = chainOf(*run);
  json checks = json::array();
  std::optional<std::int64_t> firstBad;
  auto check = [&](const char* name, bool ok, const std::string& message, std::optional<std::int64_t> seq = {}) {
    json c = {{"name", name}, {"ok", ok}, {"message", message}};
    if (seq) {
      c["seq"] = *seq;
      if (!ok && (!firstBad || *seq < *firstBad)) firstBad = *seq;
    }
    checks.push_back(std::move(c));
  };

  // The chain, against what the caller kept.
  if (options.expected) {
    bool ok = lower(*options.expected) == fp.hex();
    check("fingerprint", ok,
          ok ? "matches the fingerprint given (" + std::to_string(fp.events()) + " events)"
             : "does not match the fingerprint given: the run's stored events or protocol changed (recomputed " +
                   fp.hex() + " over " + std::to_string(fp.events()) + " events)");
  }
  if (options.exportedChain) {
    std::optional<std::int64_t> bad;
    std::string why;
    for (auto& [seq, h] : *options.exportedChain) {
      if (seq < 1 || seq > fp.events()) {
        bad = seq;
        why = "event " + std::to_string(seq) + " is in the export but not in the log";
        break;
      }
      if (fp.chain[static_cast<size_t>(seq - 1)] != h) {
        bad = seq;
        why = "event " + std::to_string(seq) + " differs from the export (it or an earlier event was changed)";
        break;
      }
    }
    // Chain values depend on every earlier event, so the first mismatch is the first change.
    if (!bad && options.exportedChain->size() < static_cast<size_t>(fp.events()))
      why = "matches the export's " + std::to_string(options.exportedChain->size()) + " events; the log has " +
            std::to_string(fp.events() - static_cast<std::int64_t>(options.exportedChain->size())) + " more";
    check("exportedChain", !bad, bad ? why : why.empty() ? "matches the export event by event" : why, bad);
  }

  // The protocol text against its digest.
  if (!run->protocolText)
    check("protocol", false, "the protocol text " + run->protocolSha256 + " is not stored");
  else {
    auto actual = sha256Hex(*run->protocolText);
    check("protocol", actual == run->protocolSha256,
          actual == run->protocolSha256 ? "protocol text matches its SHA-256"
                                        : "protocol text has SHA-256 " + actual + ", the run names " + run->protocolSha256);
  }

  // Schema: payloads are JSON objects of known types; command events name their command.
  static const std::set<std::string> known = {
      engine::event::kRunCreated,       engine::event::kRunStarted,       engine::event::kCommandStarted,
      engine::event::kCommandSucceeded, engine::event::kCommandFailed,    engine::event::kRunPaused,
      engine::event::kRunResumed,       engine::event::kRunStopRequested, engine::event::kCleanupStarted,
      engine::event::kBusMessageRejected, engine::event::kCommandsDiscarded, engine::event::kRunFinished};
  std::vector<engine::Event> events;
  events.reserve(run->events.size());
  {
    std::optional<std::int64_t> bad;
    std::string why;
    for (auto& r : run->events) {
      engine::Event e{runId, r.seq, r.type, r.ts, r.commandId, json::parse(r.payload, nullptr, false)};
      bool isCommand = r.type == engine::event::kCommandStarted || r.type == engine::event::kCommandSucceeded ||
                       r.type == engine::event::kCommandFailed;
      if (!bad) {
        if (e.payload.is_discarded() || !e.payload.is_object()) why = "payload is not a JSON object";
        else if (!known.count(r.type)) why = "unknown event type \"" + r.type + "\"";
        else if (isCommand && (r.commandIdNull || detail::text(e.payload, "commandId") != r.commandId))
          why = "command_id column and payload.commandId disagree";
        else if (!isCommand && !r.commandIdNull) why = "command_id set on a run-level event";
        else if (r.ts.size() != 27 || r.ts[10] != 'T' || r.ts.back() != 'Z') why = "ts is not an ISO 8601 UTC time";
        if (!why.empty()) bad = r.seq;
      }
      if (e.payload.is_discarded()) e.payload = json::object();
      events.push_back(std::move(e));
    }
    check("schema", !bad, bad ? "event " + std::to_string(*bad) + ": " + why : "every event has a known type and a JSON "
                                                                                 "object payload", bad);
  }

  // Sequence and lifecycle rules (docs/event-log.md "Ordering rules").
  {
    std::optional<std::int64_t> bad;
    std::string why;
    auto fault = [&](std::int64_t seq, std::string w) {
      if (!bad) {
        bad = seq;
        why = std::move(w);
      }
    };
    int terminals = 0;
    for (size_t i = 0; i < events.size(); ++i) {
      const auto& e = events[i];
      auto expect = static_cast<std::int64_t>(i + 1);
      if (e.seq != expect) fault(e.seq, "expected seq " + std::to_string(expect) + " (gap or repeat)");
      if (i == 0 && e.type != engine::event::kRunCreated) fault(e.seq, "the first event is not runCreated");
      if (i == 1 && e.type != engine::event::kRunStarted) fault(e.seq, "the second event is not runStarted");
      if (e.type == engine::event::kRunFinished) {
        if (++terminals > 1) fault(e.seq, "a second runFinished");
        else if (i + 1 != events.size()) fault(e.seq, "runFinished is not the last event");
      }
      if (e.type == engine::event::kCommandStarted) {
        bool last = i + 1 == events.size();
        const engine::Event* next = last ? nullptr : &events[i + 1];
        bool outcome = next && (next->type == engine::event::kCommandSucceeded ||
                                next->type == engine::event::kCommandFailed);
        bool cutOff = last || (next->type == engine::event::kRunFinished &&
                               detail::text(next->payload, "status") == "interrupted");
        if (outcome && next->commandId != e.commandId)
          fault(next->seq, "the outcome at seq+1 is for command " + next->commandId + ", not " + e.commandId);
        else if (!outcome && !cutOff)
          fault(e.seq + 1, "command " + e.commandId + " has no outcome at seq " + std::to_string(e.seq + 1));
      }
      if ((e.type == engine::event::kCommandSucceeded || e.type == engine::event::kCommandFailed) &&
          (i == 0 || events[i - 1].type != engine::event::kCommandStarted))
        fault(e.seq, "an outcome not preceded by its commandStarted");
    }
    if (events.empty()) fault(1, "the run has no events");
    std::string ok = terminals ? "seq 1.." + std::to_string(events.size()) + " gapless, one runFinished, last"
                               : "seq 1.." + std::to_string(events.size()) +
                                     " gapless; no runFinished yet (running, or cut off until an engine reopens the log)";
    check("sequence", !bad, bad ? "event " + std::to_string(*bad) + ": " + why : ok, bad);
  }

  // The fold finds no anomalies.
  {
    std::vector<engine::FoldIssue> issues;
    engine::fold(events, &issues);
    if (issues.empty())
      check("fold", true, "the fold found no anomalies");
    else
      check("fold", false,
            "event " + std::to_string(issues.front().seq) + ": " + issues.front().message +
                (issues.size() > 1 ? " (and " + std::to_string(issues.size() - 1) + " more)" : ""),
            issues.front().seq);
  }

  bool ok = true;
  for (auto& c : checks) ok = ok && c["ok"].get<bool>();
  return json{{"runId", runId},
              {"ok", ok},
              {"fingerprint", fingerprintJson(fp)},
              {"checks", checks},
              {"firstBad", firstBad ? json(*firstBad) : json()}};
}

}  // namespace

// Recorded JSON of an unexpected shape is reported, never thrown across the module boundary.
engine::Result<json> verifyRun(engine::EventLog& log, const std::string& runId, const VerifyOptions& options) {
  try {
    return verifyRunImpl(log, runId, options);
  } catch (const nlohmann::json::exception& e) {
    return engine::fail(engine::ErrorCode::kCorrupt, "run " + runId + ": malformed recorded data: " + e.what());
  }
}

}  // namespace runrec::recorder
