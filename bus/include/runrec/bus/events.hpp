// Live run events for external tools (docs/events-wire.md): the engine's PUB socket, the
// history REQ/REP codec, and a subscriber that delivers every event of a run exactly once,
// in order, joining late or falling behind without losing any.
//
// Endpoints: the engine binds the event endpoint V (PUB) and the history endpoint hist(V)
// (REP): inproc://x -> inproc://x.history, ipc://p -> ipc://p.history, tcp://h:P -> tcp://h:(P+1).
// A client is given V only and derives hist(V) itself.
//
// Thread-safety: each object is used by one thread at a time, except
// EventSubscriber::stop(), which any thread may call.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runrec/bus/channel.hpp"
#include "runrec/bus/curve.hpp"

namespace runrec::bus {

constexpr int kEventsVersion = 1;

// Validates an event endpoint (same rules as command endpoints) and derives its history
// endpoint.
Result<std::string> historyEndpoint(const std::string& eventsEndpoint);

// One event as published: the same fields as a row of the log's `events` table.
struct RunEvent {
  std::string runId;
  std::int64_t seq = 0;
  std::string type;
  std::string ts;
  std::string commandId;  // "" = none (published as null)
  nlohmann::json payload = nlohmann::json::object();
};

// The topic frame: "run/<runId>/<type>". Subscribe to "run/" for everything, to
// "run/<runId>/" for one run, to "run/<runId>/commandFailed" for one type of one run.
std::string eventTopic(std::string_view runId, std::string_view type);
std::string runTopicPrefix(std::string_view runId);  // "run/<runId>/" ("" -> "run/")

// The body frame: {"v":1,"runId","seq","type","ts","commandId","payload"}.
nlohmann::json eventJson(const RunEvent& event);
std::string encodeEvent(const RunEvent& event);
// Strict: missing or mistyped fields give kMalformed naming the field.
Result<RunEvent> eventFromJson(const nlohmann::json& body);
Result<RunEvent> decodeEvent(std::string_view body);

// --- history: requests and replies, one JSON frame each ---
constexpr std::int64_t kDefaultHistoryLimit = 1000;
constexpr std::int64_t kMaxHistoryLimit = 10000;
constexpr std::size_t kMaxHistoryRequestBytes = 64 * 1024;

struct HistoryRequest {
  enum class Op { kEvents, kRuns } op = Op::kEvents;
  std::string runId;            // kEvents: the full run id
  std::int64_t fromSeq = 1;     // kEvents: first seq wanted (>= 1)
  std::int64_t limit = kDefaultHistoryLimit;  // at most this many events / runs (1..kMaxHistoryLimit)
};
// {"v":1,"op":"events","runId":R,"fromSeq":N,"limit":M} or {"v":1,"op":"runs","limit":M}.
nlohmann::json toJson(const HistoryRequest& request);
// Strict (unknown fields, wrong types, out-of-range values are errors naming the field).
Result<HistoryRequest> parseHistoryRequest(std::string_view frame);

// Error reply: {"v":1,"ok":false,"error":"..."}.
nlohmann::json historyError(const std::string& message);

// Engine side of history: a REP socket. receive() answers malformed requests itself (with
// an error reply) and returns only well-formed ones; each must be answered with reply()
// before the next receive(). Frames over kMaxHistoryRequestBytes are refused by ZeroMQ
// (the peer is disconnected).
class HistoryResponder {
 public:
  // curve: nullptr = plain; else a CURVE server admitting only the keys its ZAP handler allows.
  static Result<std::unique_ptr<HistoryResponder>> bind(Context& ctx, const std::string& historyEndpoint,
                                                        const CurveServer* curve = nullptr);
  ~HistoryResponder();
  Result<std::optional<HistoryRequest>> receive(std::chrono::milliseconds timeout);
  Status reply(const nlohmann::json& answer);
  const std::string& endpoint() const;

 private:
  struct Impl;
  explicit HistoryResponder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Client side of history: one request, one reply. kRejected carries the server's error
// message; kTimeout when nobody answers.
class HistoryClient {
 public:
  static Result<std::unique_ptr<HistoryClient>> connect(Context& ctx, const std::string& historyEndpoint,
                                                        std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                                        std::optional<CurveClientKeys> curve = std::nullopt);
  ~HistoryClient();
  // One page of events (reply: "events", "lastSeq", "finished").
  Result<nlohmann::json> events(const std::string& runId, std::int64_t fromSeq, std::int64_t limit);
  // Runs, newest first (reply: "runs": [{runId, createdAt, protocolName, robot, lastSeq, finished}]).
  Result<nlohmann::json> runs(std::int64_t limit = kMaxHistoryLimit);
  // Any request frame, raw (for tests of the server's error handling).
  Result<nlohmann::json> raw(std::string_view frame);

 private:
  struct Impl;
  explicit HistoryClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Engine side of live events: a PUB socket. publish() never blocks: a subscriber whose
// queue is full (SNDHWM) misses the message and backfills it from history.
class EventPublisher {
 public:
  static Result<std::unique_ptr<EventPublisher>> bind(Context& ctx, const std::string& eventsEndpoint,
                                                      int sndhwm = 10000, const CurveServer* curve = nullptr);
  ~EventPublisher();
  void publish(std::string_view topic, std::string_view body);
  // Whether any subscriber is subscribed to anything, as of the subscriptions that have
  // reached the socket (read here, without blocking). An event published while this is
  // false reaches nobody; a subscriber that arrives later reads it from history.
  bool hasSubscribers();
  const std::string& endpoint() const;
  std::uint64_t published() const;

 private:
  struct Impl;
  explicit EventPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct SubscribeOptions {
  std::string runId;          // "" = every run
  std::int64_t fromSeq = 1;   // per run
  bool follow = false;        // keep delivering live events (one run: until runFinished)
  std::int64_t pageSize = kDefaultHistoryLimit;
  int rcvhwm = 1000;
  // With no live event for this long, ask history whether something was missed at the tail
  // (a subscriber that fell behind its HWM at the end of a run sees no later seq to jump).
  std::chrono::milliseconds idleCheck{300};
  std::chrono::milliseconds requestTimeout{5000};
  // Keys for an engine whose endpoints use CURVE (--curve-keys); nullopt = plain.
  std::optional<CurveClientKeys> curve;
};

struct SubscribeStats {
  std::uint64_t delivered = 0;
  std::uint64_t fromLive = 0;     // delivered straight from the live stream
  std::uint64_t fromHistory = 0;  // delivered from history (catch-up and backfill)
  std::uint64_t gaps = 0;         // seq jumps seen on the live stream
  std::uint64_t duplicates = 0;   // live events skipped as already delivered
};

// Delivers events exactly once and in seq order per run: subscribes to the live stream
// first and buffers it, reads history up to the live position, then skips what was already
// delivered; a seq jump on the live stream is backfilled from history before going on.
class EventSubscriber {
 public:
  // The callback gets each event and its JSON body; returning false stops run().
  using Callback = std::function<bool(const RunEvent&, const nlohmann::json& body)>;

  static Result<std::unique_ptr<EventSubscriber>> connect(Context& ctx, const std::string& eventsEndpoint,
                                                          SubscribeOptions options);
  ~EventSubscriber();
  // Returns when done: without follow, once history is read to its end; with follow and one
  // run, after its runFinished; with follow and every run, on stop(). An unknown run is
  // kRejected (from history); no engine answering is kTimeout.
  Status run(const Callback& onEvent);
  // Thread-safe: makes run() return soon.
  void stop();
  SubscribeStats stats() const;

 private:
  struct Impl;
  explicit EventSubscriber(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace runrec::bus
