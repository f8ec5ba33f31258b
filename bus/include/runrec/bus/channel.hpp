// The command bus: runner --PUSH/PULL--> engine for commands, engine --ROUTER/DEALER--> runner
// for outcomes, with credit-based flow control on top of ZeroMQ's high-water marks.
//
// Flow control: the runner may have at most `window` commands sent whose outcome it has
// not yet received (window = the HWM N, see docs/wire-protocol.md). send() blocks (while
// reading outcomes) when the window is full. ZeroMQ HWMs are set to N on both sockets of
// the command channel as a second line of defence.
//
// Outcomes are addressed: the runner's DEALER has a unique routing id, named in its open
// message ("replyTo"), and the engine's ROUTER sends each run's answers to that runner only.
// (A PUSH here would round-robin, so a new runner's "opened" could go to the pipe of a
// runner that had just closed, and be lost.)
//
// Endpoints: the engine binds the command endpoint E and the outcome endpoint out(E):
// inproc://x -> inproc://x.out, ipc:///p -> ipc:///p.out, tcp://h:P -> tcp://h:(P+1).
// The inproc transport needs both sides to share one Context.
//
// Thread-safety: each object is used by one thread at a time. A Context may be shared, and
// must outlive every CommandClient/CommandServer made from it (its destructor waits for them).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runrec/bus/message.hpp"

namespace zmq {
class context_t;
}

namespace runrec::bus {

// Owns a ZeroMQ context. Share one between an in-process engine and runner (inproc://).
class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  zmq::context_t& zmq();

 private:
  std::unique_ptr<zmq::context_t> ctx_;
};

// Validates an endpoint and derives the outcome endpoint from it.
Result<std::string> outcomeEndpoint(const std::string& commandEndpoint);

// The default credit window. Outcomes go back once their commit group is committed
// (docs/event-log.md), so the window must cover a group in flight, the one gathering, and the
// runner's wake-up on a busy machine: at 16 the engine ran dry and waited for the runner
// once every 7-10 commands; at 64 about once every 30-45 (docs/performance.md, fifth pass). 64
// commands of a few hundred bytes each is still a small, fixed bound.
constexpr int kDefaultHwm = 64;

struct ChannelOptions {
  int hwm = kDefaultHwm;  // N: also the credit window
  std::chrono::milliseconds linger{2000};
};

// Runner side.
class CommandClient {
 public:
  static Result<std::unique_ptr<CommandClient>> connect(Context& ctx, const std::string& endpoint,
                                                        ChannelOptions options = {});
  ~CommandClient();

  // Sends kOpen and waits for kOpened (or kRefused -> kRejected). Returns the run id.
  // kTimeout if no engine took the open or answered within `timeout`.
  Result<std::string> open(const nlohmann::json& runDescription,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Called for each outcome as it arrives (in the thread that calls send/finish).
  void onOutcome(std::function<void(const Message&)> callback);

  // Sends one command (seq = 1, 2, ... in order). Blocks while `window` commands are in
  // flight, handling outcomes as they arrive. `timeout` bounds each wait for credit
  // (nullopt: wait forever). Fails with kRejected if the engine has finished the run
  // (e.g. a command failed): the runner must then stop sending and call finish().
  Status send(const nlohmann::json& command,
              std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // The same for a command given as JSON text (one object, e.g. as nlohmann's dump() wrote it,
  // runner::forEachCommandText): sent as it is, in the frame send() writes for its value; it
  // is not parsed (kMalformed only if it does not start with '{' and end with '}'). The
  // engine's decode refuses a frame that is not valid JSON.
  Status sendJson(std::string_view command,
                  std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Sends kEnd, receives every remaining outcome, and waits for kFinished; returns its
  // body (the run summary). Sockets stay open until the engine has acknowledged.
  Result<nlohmann::json> finish(const nlohmann::json& endBody,
                                std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  std::uint64_t sent() const;
  std::uint64_t completed() const;  // outcomes received
  std::uint64_t inFlight() const { return sent() - completed(); }
  std::uint64_t maxInFlight() const;  // the largest in-flight count seen (for tests/bench)
  int window() const;

 private:
  struct Impl;
  explicit CommandClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Engine side.
class CommandServer {
 public:
  static Result<std::unique_ptr<CommandServer>> bind(Context& ctx, const std::string& endpoint,
                                                     ChannelOptions options = {});
  ~CommandServer();

  // Waits up to `timeout` for the next message on the command channel (nullopt if none
  // arrived). A frame that does not decode is returned as kMalformed (the frame is
  // consumed; the caller decides what to do). Messages come from any connected runner, in
  // order per runner; stale ones (another runId) are the caller's to ignore. `wakeFd`: a file
  // descriptor of the caller's (e.g. an eventfd) that also ends the wait, with nullopt, when
  // it becomes readable (the caller reads it).
  Result<std::optional<Message>> receive(std::chrono::milliseconds timeout, int wakeFd = -1);
  // Non-blocking receive.
  Result<std::optional<Message>> tryReceive();

  // Sends on the outcome channel to the runner of message.runId. kOpened, and a kRefused
  // whose runId is not an open run, answer the oldest unanswered kOpen (so answer opens in
  // the order received); the bus sets their seq to that open's seq. Never blocks
  // indefinitely: kClosed at once if no runner opened that run (or it has been sent its
  // kFinished), or after `timeout` if that runner is not connected / not reading.
  // kMalformed for runner-side types (open, command, end).
  Status reply(const Message& message,
               std::chrono::milliseconds timeout = std::chrono::seconds(5));

  const std::string& endpoint() const;

 private:
  struct Impl;
  explicit CommandServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace runrec::bus
