// A run's fingerprint: a SHA-256 hash chain over its stored events and protocol text
// (algorithm in docs/recorder.md), and `runrec verify`'s checks of a run's integrity.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runrec/engine/event_log.hpp"

namespace runrec::recorder {

inline constexpr const char* kFingerprintAlgorithm = "runrec-fingerprint/1";

struct Fingerprint {
  std::string head;                 // h0 (run row + protocol text), lowercase hex
  std::vector<std::string> chain;   // chain[i] = h_{i+1}, the hash after event seq i+1
  std::string hex() const { return chain.empty() ? head : chain.back(); }
  std::int64_t events() const { return static_cast<std::int64_t>(chain.size()); }
};

// Recomputes the chain from the bytes stored in the log (events in seq order, as stored).
engine::Result<Fingerprint> fingerprint(const engine::EventLog& log, const std::string& runId);

// {"algorithm", "events", "sha256"}: what audit and export print.
nlohmann::json fingerprintJson(const Fingerprint& fp);

struct VerifyOptions {
  std::optional<std::string> expected;  // a fingerprint printed earlier (hex)
  // Per-event hashes exported earlier (seq -> hex, from `runrec export --format ndjson`).
  std::optional<std::vector<std::pair<std::int64_t, std::string>>> exportedChain;
};

// Checks a run: the hash chain (against `expected` / an exported chain), the protocol text
// against its SHA-256, the sequence rules of docs/event-log.md and a fold without anomalies.
// Returns {"runId", "ok", "fingerprint", "checks": [{name, ok, message, seq?}], "firstBad"}.
engine::Result<nlohmann::json> verifyRun(engine::EventLog& log, const std::string& runId,
                                         const VerifyOptions& options = {});

// Parses an ndjson export (lines with "seq" and "hash") into an exported chain.
engine::Result<std::vector<std::pair<std::int64_t, std::string>>> parseExportedChain(const std::string& text);

}  // namespace runrec::recorder
