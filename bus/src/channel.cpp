// The command bus over ZeroMQ: endpoint derivation, the runner's CommandClient (credit window)
// and the engine's CommandServer. zmq::error_t never leaves this file; it becomes an Error.
#include "runrec/bus/channel.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <deque>
#include <exception>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>
#include <zmq.hpp>

#include "ipc_file.hpp"
#include "wire.hpp"

namespace runrec::bus {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kMaxHwm = 1'000'000;
// Longest ipc:// path libzmq accepts (sockaddr_un.sun_path minus the terminating NUL).
constexpr std::size_t kMaxIpcPath = 107;

Error err(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

Error fromZmq(const std::string& what, const zmq::error_t& e) {
  // ETERM: the context is being shut down; everything else is an I/O failure.
  return err(e.num() == ETERM ? ErrorCode::kClosed : ErrorCode::kIo,
             fmt::format("bus: {}: {}", what, e.what()));
}

// A point in time to give up at; `never` when the caller passed no timeout.
class Deadline {
 public:
  static Deadline after(std::optional<milliseconds> timeout) {
    Deadline d;
    if (timeout) d.at_ = Clock::now() + std::max(*timeout, milliseconds(0));
    return d;
  }
  // Milliseconds left for zmq_poll: -1 forever, else >= 0 (rounded up so we never spin).
  long pollMs() const {
    if (!at_) return -1;
    auto left = *at_ - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    return static_cast<long>(std::chrono::ceil<milliseconds>(left).count());
  }
  bool expired() const { return at_ && Clock::now() >= *at_; }

 private:
  std::optional<Clock::time_point> at_;
};

std::string describe(std::optional<milliseconds> timeout) {
  return timeout ? fmt::format("{} ms", timeout->count()) : std::string("(no timeout)");
}

// zmq_poll without exceptions; retries on EINTR. Returns the number of ready items or -1.
int pollItems(zmq::pollitem_t* items, int count, long timeoutMs) {
  for (;;) {
    int rc = zmq_poll(items, count, timeoutMs);
    if (rc >= 0 || zmq_errno() != EINTR) return rc;
  }
}

Status validateOptions(const ChannelOptions& options) {
  if (options.hwm < 1 || options.hwm > kMaxHwm) {
    return tl::unexpected(err(ErrorCode::kInvalidEndpoint,
                              fmt::format("bus: invalid channel options: hwm must be between 1 and "
                                          "{}, got {}",
                                          kMaxHwm, options.hwm)));
  }
  if (options.linger.count() < -1) {
    return tl::unexpected(err(ErrorCode::kInvalidEndpoint,
                              fmt::format("bus: invalid channel options: linger must be -1 "
                                          "(forever) or >= 0 ms, got {}",
                                          options.linger.count())));
  }
  return {};
}

int lingerMs(const ChannelOptions& options) {
  return static_cast<int>(std::min<long long>(options.linger.count(), 1'000'000'000));
}

// Receives one frame without blocking: nullopt if none is waiting. A multi-part message is
// consumed entirely and reported as kMalformed (the bus sends exactly one frame).
Result<std::optional<Message>> receiveOne(zmq::socket_t& socket, std::string* replyTo = nullptr) {
  zmq::message_t frame;
  if (!socket.recv(frame, zmq::recv_flags::dontwait)) return std::optional<Message>{};
  if (frame.more()) {
    int parts = 1;
    zmq::message_t rest;
    while (socket.get(zmq::sockopt::rcvmore)) {
      if (!socket.recv(rest, zmq::recv_flags::dontwait)) break;  // atomic; cannot happen
      ++parts;
    }
    return tl::unexpected(
        err(ErrorCode::kMalformed,
            fmt::format("bus message: expected one frame, got a {}-part message", parts)));
  }
  auto decoded = detail::decodeFrame(frame.to_string_view(), replyTo);
  if (!decoded) return tl::unexpected(decoded.error());
  return std::optional<Message>{std::move(*decoded)};
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Context

Context::Context() : ctx_(std::make_unique<zmq::context_t>(1)) {}
Context::~Context() = default;
zmq::context_t& Context::zmq() { return *ctx_; }

// ---------------------------------------------------------------------------------------
// Endpoints

Result<std::string> outcomeEndpoint(const std::string& e) {
  auto invalid = [&](const std::string& why) {
    return tl::unexpected(err(ErrorCode::kInvalidEndpoint,
                              fmt::format("bus endpoint \"{}\": {}", e, why)));
  };
  auto has = [&](std::string_view prefix) { return e.rfind(prefix, 0) == 0; };
  auto hasSpace = [](std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; });
  };
  if (has("inproc://")) {
    std::string_view name = std::string_view(e).substr(9);
    if (name.empty()) return invalid("inproc:// needs a name, e.g. inproc://engine");
    if (hasSpace(name)) return invalid("the inproc name contains whitespace or control characters");
    return e + ".out";
  }
  if (has("ipc://")) {
    std::string_view path = std::string_view(e).substr(6);
    if (path.empty()) return invalid("ipc:// needs a socket path, e.g. ipc:///run/runrec/engine");
    if (path == "*") return invalid("ipc://* (a random path) is not supported: name the path");
    if (hasSpace(path)) return invalid("the ipc path contains whitespace or control characters");
    if (path.size() + 4 > kMaxIpcPath) {
      return invalid(fmt::format("the ipc path is too long: {} bytes, and {} with \".out\" "
                                 "(the limit for a Unix socket path is {})",
                                 path.size(), path.size() + 4, kMaxIpcPath));
    }
    return e + ".out";
  }
  if (has("tcp://")) {
    std::string_view rest = std::string_view(e).substr(6);
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return invalid("expected tcp://host:port");
    std::string_view host = rest.substr(0, colon);
    std::string_view port = rest.substr(colon + 1);
    if (host.empty()) return invalid("expected tcp://host:port: the host is empty");
    if (hasSpace(host) || host.find(';') != std::string_view::npos) {
      return invalid("the tcp host contains whitespace, control characters or ';'");
    }
    if (host.front() == '[' && host.back() != ']') return invalid("unbalanced [ in the IPv6 host");
    if (port == "*" || port == "0") {
      return invalid("the port must be a fixed number (the outcome channel uses port+1)");
    }
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size()) {
      return invalid(fmt::format("the port \"{}\" is not a number", port));
    }
    if (p < 1 || p > 65534) {
      return invalid(fmt::format("the port must be 1..65534 (the outcome channel uses port+1), "
                                 "got {}",
                                 p));
    }
    return fmt::format("tcp://{}:{}", host, p + 1);
  }
  return invalid("expected inproc://name, ipc://path or tcp://host:port");
}

// ---------------------------------------------------------------------------------------
// CommandClient

struct CommandClient::Impl {
  enum class State {
    kIdle,       // no run (before open, or after finish)
    kRunning,    // opened; commands may be sent
    kEnded,      // the engine sent kFinished before finish() was called
  };

  Impl(zmq::context_t& ctx, std::string e, std::string out, int w)
      : push(ctx, zmq::socket_type::push),
        pull(ctx, zmq::socket_type::dealer),
        endpoint(std::move(e)),
        outEndpoint(std::move(out)),
        window(w),
        routingId(newRoutingId()) {}

  // Unique per client: the engine's ROUTER addresses this runner's outcomes by it.
  static std::string newRoutingId() {
    static std::atomic<std::uint64_t> counter{0};
    std::random_device rd;
    std::uint64_t r = (std::uint64_t{rd()} << 32) ^ rd();
    return fmt::format("runner-{:016x}-{}", r, ++counter);
  }

  zmq::socket_t push;  // commands -> engine (PUSH, connect E)
  zmq::socket_t pull;  // outcomes <- engine (DEALER, connect out(E); we only receive)
  std::string endpoint;
  std::string outEndpoint;
  int window;
  std::string routingId;
  std::uint64_t opens = 0;  // seq of the last kOpen sent; the answer echoes it
  std::function<void(const Message&)> onOutcome;

  State state = State::kIdle;
  std::string runId;
  std::uint64_t sent = 0;
  std::uint64_t completed = 0;
  std::uint64_t maxInFlight = 0;
  bool endSent = false;    // finish() sent kEnd (a timed-out finish() may be called again)
  nlohmann::json summary;  // the kFinished body
  std::string frame;       // the last command frame sent (its buffer is reused)

  std::uint64_t inFlight() const { return sent - completed; }

  // Handles one message from the outcome channel during a run. Errors are protocol
  // violations by the engine (reported to the caller; the message is not counted).
  Status handle(Message&& m) {
    if (m.runId != runId) {
      spdlog::debug("bus: ignoring {} for run \"{}\" (this run is \"{}\")", toString(m.type),
                    m.runId, runId);
      return {};
    }
    switch (m.type) {
      case MessageType::kOutcome:
      case MessageType::kRefused: {
        if (m.seq != completed + 1 || m.seq > sent) {
          if (m.type == MessageType::kRefused) {
            return tl::unexpected(err(
                ErrorCode::kRejected,
                fmt::format("bus: the engine refused (seq {}) in run \"{}\": {}", m.seq, runId,
                            m.body.value("message", std::string("(no message)")))));
          }
          return tl::unexpected(err(ErrorCode::kMalformed,
                                    fmt::format("bus: outcome for command {} of run \"{}\" is out "
                                                "of order: expected {} ({} sent, {} completed)",
                                                m.seq, runId, completed + 1, sent, completed)));
        }
        ++completed;
        if (onOutcome) onOutcome(m);
        return {};
      }
      case MessageType::kFinished:
        summary = std::move(m.body);
        state = State::kEnded;
        return {};
      case MessageType::kOpened:
        spdlog::debug("bus: ignoring a repeated opened for run \"{}\"", runId);
        return {};
      case MessageType::kOpen:
      case MessageType::kCommand:
      case MessageType::kEnd:
        break;
    }
    return tl::unexpected(err(ErrorCode::kMalformed,
                              fmt::format("bus: unexpected {} message on the outcome channel",
                                          toString(m.type))));
  }

  // Handles every outcome that is already waiting, without blocking.
  Status drain() {
    while (state == State::kRunning) {
      auto r = receiveOne(pull);
      if (!r) return tl::unexpected(r.error());
      if (!*r) return {};
      if (auto s = handle(std::move(**r)); !s) return s;
    }
    return {};
  }

  // Sends one frame on the command socket. While the socket cannot take it, keeps handling
  // outcomes; stops early (returns false in *sentOut) if the run ends meanwhile.
  Status sendFrame(const std::string& frame, const Deadline& deadline, bool* sentOut,
                   const char* what) {
    *sentOut = false;
    for (;;) {
      if (push.send(zmq::buffer(frame), zmq::send_flags::dontwait)) {
        *sentOut = true;
        return {};
      }
      zmq::pollitem_t items[2] = {{push.handle(), 0, ZMQ_POLLOUT, 0},
                                  {pull.handle(), 0, ZMQ_POLLIN, 0}};
      int n = pollItems(items, state == State::kRunning ? 2 : 1, deadline.pollMs());
      if (n < 0) return tl::unexpected(fromZmq("poll", zmq::error_t()));
      if (n == 0 && deadline.expired()) {
        return tl::unexpected(err(ErrorCode::kTimeout,
                                  fmt::format("bus: could not send {} to {}: the engine did not "
                                              "take it in time",
                                              what, endpoint)));
      }
      if (items[1].revents & ZMQ_POLLIN) {
        if (auto s = drain(); !s) return s;
        if (state != State::kRunning) return {};
      }
    }
  }

  // Waits until at least one message is readable on the outcome socket.
  Status waitReadable(const Deadline& deadline, const std::string& whatFor) {
    zmq::pollitem_t item{pull.handle(), 0, ZMQ_POLLIN, 0};
    for (;;) {
      int n = pollItems(&item, 1, deadline.pollMs());
      if (n < 0) return tl::unexpected(fromZmq("poll", zmq::error_t()));
      if (n > 0) return {};
      if (deadline.expired()) {
        return tl::unexpected(err(ErrorCode::kTimeout, "bus: timed out waiting for " + whatFor));
      }
    }
  }

  Status rejectEnded() const {
    return tl::unexpected(err(ErrorCode::kRejected,
                              fmt::format("bus: the engine finished run \"{}\" early after {} of "
                                          "{} outcomes; stop sending and call finish()",
                                          runId, completed, sent)));
  }

  Result<std::string> open(const nlohmann::json& description, milliseconds timeout) {
    if (state != State::kIdle) {
      return tl::unexpected(err(ErrorCode::kRejected,
                                fmt::format("bus: run \"{}\" is still open; finish() it first",
                                            runId)));
    }
    Deadline deadline = Deadline::after(timeout);
    const std::uint64_t openSeq = ++opens;
    std::string frame =
        detail::encodeFrame(Message{MessageType::kOpen, "", openSeq, description}, routingId);
    bool sentFrame = false;
    if (auto s = sendFrame(frame, deadline, &sentFrame, "open"); !s) {
      if (s.error().code == ErrorCode::kTimeout) {
        return tl::unexpected(err(ErrorCode::kTimeout,
                                  fmt::format("bus: no engine took the open at {} within {} ms",
                                              endpoint, timeout.count())));
      }
      return tl::unexpected(s.error());
    }
    for (;;) {
      if (auto s = waitReadable(deadline, "opened"); !s) {
        return tl::unexpected(err(ErrorCode::kTimeout,
                                  fmt::format("bus: no answer to open from the engine at {} "
                                              "within {} ms",
                                              endpoint, timeout.count())));
      }
      auto r = receiveOne(pull);
      if (!r) return tl::unexpected(r.error());
      if (!*r) continue;
      Message& m = **r;
      if ((m.type == MessageType::kRefused || m.type == MessageType::kOpened) && m.seq != openSeq) {
        // The answer to an earlier open() that timed out: that run is not ours to drive.
        spdlog::debug("bus: ignoring {} for open #{} (waiting for #{})", toString(m.type), m.seq,
                      openSeq);
        continue;
      }
      if (m.type == MessageType::kRefused) {
        return tl::unexpected(err(ErrorCode::kRejected,
                                  "bus: the engine refused the run: " +
                                      m.body.value("message", std::string("(no message)"))));
      }
      if (m.type != MessageType::kOpened) {
        spdlog::debug("bus: ignoring {} for run \"{}\" while opening", toString(m.type), m.runId);
        continue;
      }
      if (m.runId.empty()) {
        return tl::unexpected(
            err(ErrorCode::kMalformed, "bus: the engine's opened message has an empty runId"));
      }
      runId = m.runId;
      state = State::kRunning;
      sent = completed = maxInFlight = 0;
      endSent = false;
      summary = nullptr;
      return runId;
    }
  }

  Status send(const nlohmann::json& command, std::optional<milliseconds> timeout) {
    std::string body;
    if (!command.is_null()) dumpJson(command, body);
    return sendText(body, timeout);
  }

  // `body`: the command as JSON text (empty: {}).
  Status sendText(std::string_view body, std::optional<milliseconds> timeout) {
    if (state == State::kEnded) return rejectEnded();
    if (state != State::kRunning) {
      return tl::unexpected(err(ErrorCode::kClosed, "bus: no open run (call open() first)"));
    }
    if (endSent) {
      return tl::unexpected(
          err(ErrorCode::kClosed, fmt::format("bus: run \"{}\" is ending: finish() was called", runId)));
    }
    if (auto s = drain(); !s) return s;
    if (state == State::kEnded) return rejectEnded();
    Deadline deadline = Deadline::after(timeout);
    while (inFlight() >= static_cast<std::uint64_t>(window)) {
      if (auto s = waitReadable(deadline, fmt::format("credit: {} commands in flight, no outcome "
                                                      "within {}",
                                                      inFlight(), describe(timeout)));
          !s) {
        return s;
      }
      if (auto s = drain(); !s) return s;
      if (state == State::kEnded) return rejectEnded();
    }
    frame.clear();  // reused: its capacity is kept from one command to the next
    detail::appendFrame(frame, MessageType::kCommand, runId, sent + 1, {}, body);
    bool sentFrame = false;
    if (auto s = sendFrame(frame, deadline, &sentFrame, "a command"); !s) return s;
    if (!sentFrame) return rejectEnded();
    ++sent;
    maxInFlight = std::max(maxInFlight, inFlight());
    return {};
  }

  Result<nlohmann::json> finish(const nlohmann::json& endBody,
                                std::optional<milliseconds> timeout) {
    if (state == State::kIdle) {
      if (!summary.is_null()) return summary;  // already finished: same answer again
      return tl::unexpected(err(ErrorCode::kClosed, "bus: no open run to finish"));
    }
    Deadline deadline = Deadline::after(timeout);
    if (state == State::kRunning) {
      if (auto s = drain(); !s) return tl::unexpected(s.error());
    }
    if (state == State::kRunning && !endSent) {
      std::string frame = encode(Message{MessageType::kEnd, runId, sent, endBody});
      bool sentFrame = false;
      if (auto s = sendFrame(frame, deadline, &sentFrame, "end"); !s) return tl::unexpected(s.error());
      endSent = sentFrame;
    }
    if (state == State::kRunning) {
      while (state == State::kRunning) {
        if (auto s = waitReadable(deadline, fmt::format("finished for run \"{}\" ({} of {} outcomes "
                                                        "received) within {}",
                                                        runId, completed, sent, describe(timeout)));
            !s) {
          return tl::unexpected(s.error());
        }
        if (auto s = drain(); !s) return tl::unexpected(s.error());
      }
    }
    // kEnded: the engine has sent kFinished, the last message of the run.
    state = State::kIdle;
    return summary;
  }
};

CommandClient::CommandClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CommandClient::~CommandClient() = default;

Result<std::unique_ptr<CommandClient>> CommandClient::connect(Context& ctx,
                                                              const std::string& endpoint,
                                                              ChannelOptions options) {
  auto out = outcomeEndpoint(endpoint);
  if (!out) return tl::unexpected(out.error());
  if (auto s = validateOptions(options); !s) return tl::unexpected(s.error());
  try {
    auto impl = std::make_unique<Impl>(ctx.zmq(), endpoint, *out, options.hwm);
    impl->pull.set(zmq::sockopt::linger, lingerMs(options));
    impl->pull.set(zmq::sockopt::rcvhwm, 2 * options.hwm + 16);
    impl->pull.set(zmq::sockopt::routing_id, impl->routingId);
    impl->push.set(zmq::sockopt::linger, lingerMs(options));
    impl->push.set(zmq::sockopt::sndhwm, options.hwm);
    // Do not queue commands for a peer whose connection is not complete (tcp/ipc): open()
    // then times out cleanly when no engine is there instead of leaving a stale kOpen behind.
    impl->push.set(zmq::sockopt::immediate, true);
    // Outcomes first, so the engine's answer to kOpen has somewhere to go.
    impl->pull.connect(*out);
    impl->push.connect(endpoint);
    return std::unique_ptr<CommandClient>(new CommandClient(std::move(impl)));
  } catch (const zmq::error_t& e) {
    return tl::unexpected(fromZmq("connect to " + endpoint, e));
  } catch (const std::exception& e) {
    return tl::unexpected(err(ErrorCode::kIo, fmt::format("bus: connect to {}: {}", endpoint, e.what())));
  }
}

namespace {
// Runs `body` and turns any exception into an Error (nothing is thrown out of the bus API).
template <class R, class F>
R guarded(const std::string& what, F&& body) {
  try {
    return body();
  } catch (const zmq::error_t& e) {
    return tl::unexpected(fromZmq(what, e));
  } catch (const std::exception& e) {
    return tl::unexpected(err(ErrorCode::kIo, fmt::format("bus: {}: {}", what, e.what())));
  }
}
}  // namespace

Result<std::string> CommandClient::open(const nlohmann::json& runDescription,
                                        std::chrono::milliseconds timeout) {
  return guarded<Result<std::string>>("open", [&] { return impl_->open(runDescription, timeout); });
}

void CommandClient::onOutcome(std::function<void(const Message&)> callback) {
  impl_->onOutcome = std::move(callback);
}

Status CommandClient::send(const nlohmann::json& command,
                           std::optional<std::chrono::milliseconds> timeout) {
  return guarded<Status>("send", [&] { return impl_->send(command, timeout); });
}

Status CommandClient::sendJson(std::string_view command, std::optional<std::chrono::milliseconds> timeout) {
  // Not parsed (that is the point): a cheap check that it is one object, not a fragment.
  if (command.size() < 2 || command.front() != '{' || command.back() != '}') {
    std::string shown(command.substr(0, 60));
    return tl::unexpected(err(ErrorCode::kMalformed,
                              fmt::format("bus: sendJson: expected the text of a JSON object, got \"{}{}\"", shown,
                                          command.size() > 60 ? "..." : "")));
  }
  return guarded<Status>("send", [&] { return impl_->sendText(command, timeout); });
}

Result<nlohmann::json> CommandClient::finish(const nlohmann::json& endBody,
                                             std::optional<std::chrono::milliseconds> timeout) {
  return guarded<Result<nlohmann::json>>("finish", [&] { return impl_->finish(endBody, timeout); });
}

std::uint64_t CommandClient::sent() const { return impl_->sent; }
std::uint64_t CommandClient::completed() const { return impl_->completed; }
std::uint64_t CommandClient::maxInFlight() const { return impl_->maxInFlight; }
int CommandClient::window() const { return impl_->window; }

// ---------------------------------------------------------------------------------------
// CommandServer

struct CommandServer::Impl {
  Impl(zmq::context_t& ctx, std::string e, std::string out)
      : pull(ctx, zmq::socket_type::pull),
        router(ctx, zmq::socket_type::router),
        endpoint(std::move(e)),
        outEndpoint(std::move(out)) {}

  detail::IpcFile file, outFile;  // the ipc socket files, removed after the sockets close
  zmq::socket_t pull;    // commands <- runners (PULL, bind E)
  zmq::socket_t router;  // outcomes -> runners (ROUTER, bind out(E)), addressed by routing id
  std::string endpoint;
  std::string outEndpoint;
  // Opens received and not yet answered (oldest first), and each open run's runner.
  struct PendingOpen {
    std::string replyTo;
    std::uint64_t seq;
  };
  static constexpr std::size_t kMaxPendingOpens = 64;
  std::deque<PendingOpen> pendingOpens;
  std::unordered_map<std::string, std::string> routes;  // runId -> routing id

  Result<std::optional<Message>> receiveChecked() {
    std::string replyTo;
    auto r = receiveOne(pull, &replyTo);
    if (r && *r && (*r)->type == MessageType::kOpen) {
      if (replyTo.empty()) {
        return tl::unexpected(err(ErrorCode::kMalformed,
                                  "bus message: \"replyTo\": missing (an open must name the "
                                  "routing id of the runner's outcome socket)"));
      }
      if (pendingOpens.size() == kMaxPendingOpens) {
        spdlog::warn("bus: {} opens left unanswered; forgetting the oldest", kMaxPendingOpens);
        pendingOpens.pop_front();
      }
      pendingOpens.push_back({std::move(replyTo), (*r)->seq});
    }
    return r;
  }

  Result<std::optional<Message>> receive(long timeoutMs, int wakeFd = -1) {
    auto r = receiveChecked();
    if (!r || *r || timeoutMs == 0) return r;
    Deadline deadline = Deadline::after(milliseconds(timeoutMs));
    zmq::pollitem_t items[2] = {{pull.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wakeFd, ZMQ_POLLIN, 0}};
    for (;;) {
      int n = pollItems(items, wakeFd >= 0 ? 2 : 1, deadline.pollMs());
      if (n < 0) return tl::unexpected(fromZmq("poll", zmq::error_t()));
      if (n > 0) {
        r = receiveChecked();
        if (!r || *r) return r;
        if (wakeFd >= 0 && (items[1].revents & ZMQ_POLLIN)) return std::optional<Message>{};
      }
      if (deadline.expired()) return std::optional<Message>{};
    }
  }

  // Which runner a reply goes to, and the seq to send: opened/refused answer the oldest
  // unanswered open (and carry its seq); everything else goes to the runner that opened
  // message.runId.
  Result<std::string> routeFor(const Message& m, std::uint64_t& seq) {
    seq = m.seq;
    auto answerOpen = [&]() -> std::string {
      PendingOpen p = std::move(pendingOpens.front());
      pendingOpens.pop_front();
      seq = p.seq;
      return std::move(p.replyTo);
    };
    auto noRunner = [&](const std::string& why) {
      return tl::unexpected(err(ErrorCode::kClosed,
                                fmt::format("bus: no runner for the {} of run \"{}\": {}",
                                            toString(m.type), m.runId, why)));
    };
    switch (m.type) {
      case MessageType::kOpened: {
        if (pendingOpens.empty()) return noRunner("no open is waiting for an answer");
        if (m.runId.empty()) {
          return tl::unexpected(err(ErrorCode::kMalformed, "bus: opened needs a non-empty runId"));
        }
        std::string to = answerOpen();
        routes[m.runId] = to;
        return to;
      }
      case MessageType::kRefused: {
        if (auto it = routes.find(m.runId); !m.runId.empty() && it != routes.end()) {
          return it->second;
        }
        if (pendingOpens.empty()) return noRunner("no open is waiting for an answer");
        return answerOpen();
      }
      case MessageType::kOutcome:
      case MessageType::kFinished: {
        auto it = routes.find(m.runId);
        if (it == routes.end()) return noRunner("no runner opened it (or it already finished)");
        return it->second;
      }
      case MessageType::kOpen:
      case MessageType::kCommand:
      case MessageType::kEnd:
        break;
    }
    return tl::unexpected(err(ErrorCode::kMalformed,
                              fmt::format("bus: reply() cannot send {}: it is a runner message",
                                          toString(m.type))));
  }

  Status reply(const Message& message, milliseconds timeout) {
    std::uint64_t seq = 0;
    auto route = routeFor(message, seq);
    if (!route) return tl::unexpected(route.error());
    std::string frame;
    if (seq == message.seq) {
      frame = detail::encodeFrame(message, {});
    } else {
      Message stamped = message;
      stamped.seq = seq;
      frame = detail::encodeFrame(stamped, {});
    }
    Deadline deadline = Deadline::after(timeout);
    // ROUTER_MANDATORY: EHOSTUNREACH while the runner's outcome connection is not (yet, or
    // any more) there, EAGAIN while its queue is full. Both are retried until the deadline.
    auto backoff = std::chrono::microseconds(50);
    for (;;) {
      int rc = zmq_send(router.handle(), route->data(), route->size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
      if (rc >= 0) {
        // The routing frame went out, so the pipe has room: the payload cannot fail.
        rc = zmq_send(router.handle(), frame.data(), frame.size(), 0);
        if (rc < 0) return tl::unexpected(fromZmq("reply", zmq::error_t()));
        if (message.type == MessageType::kFinished) routes.erase(message.runId);
        return {};
      }
      int e = zmq_errno();
      if (e != EHOSTUNREACH && e != EAGAIN && e != EINTR) {
        return tl::unexpected(fromZmq("reply", zmq::error_t()));
      }
      if (deadline.expired()) {
        return tl::unexpected(err(ErrorCode::kClosed,
                                  fmt::format("bus: no runner took the {} for run \"{}\" on {} "
                                              "within {} ms ({})",
                                              toString(message.type), message.runId, outEndpoint,
                                              timeout.count(),
                                              e == EAGAIN ? "its queue is full"
                                                          : "it is not connected")));
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::microseconds(2000));
    }
  }
};

CommandServer::CommandServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CommandServer::~CommandServer() = default;

Result<std::unique_ptr<CommandServer>> CommandServer::bind(Context& ctx,
                                                           const std::string& endpoint,
                                                           ChannelOptions options) {
  auto out = outcomeEndpoint(endpoint);
  if (!out) return tl::unexpected(out.error());
  if (auto s = validateOptions(options); !s) return tl::unexpected(s.error());
  std::string current = endpoint;
  try {
    auto impl = std::make_unique<Impl>(ctx.zmq(), endpoint, *out);
    impl->pull.set(zmq::sockopt::linger, lingerMs(options));
    impl->pull.set(zmq::sockopt::rcvhwm, options.hwm);
    impl->router.set(zmq::sockopt::linger, lingerMs(options));
    // At most `hwm` outcomes plus opened/finished are ever owed to one runner.
    impl->router.set(zmq::sockopt::sndhwm, 2 * options.hwm + 16);
    impl->router.set(zmq::sockopt::router_mandatory, true);
    // A runner whose connection dropped and came back (same routing id) takes over its route.
    impl->router.set(zmq::sockopt::router_handover, true);
    impl->pull.bind(endpoint);
    impl->file.remember(endpoint);
    current = *out;
    impl->router.bind(*out);
    impl->outFile.remember(*out);
    return std::unique_ptr<CommandServer>(new CommandServer(std::move(impl)));
  } catch (const zmq::error_t& e) {
    return tl::unexpected(fromZmq("bind " + current, e));
  } catch (const std::exception& e) {
    return tl::unexpected(err(ErrorCode::kIo, fmt::format("bus: bind {}: {}", current, e.what())));
  }
}

Result<std::optional<Message>> CommandServer::receive(std::chrono::milliseconds timeout, int wakeFd) {
  return guarded<Result<std::optional<Message>>>(
      "receive", [&] { return impl_->receive(std::max<long>(0, static_cast<long>(timeout.count())), wakeFd); });
}

Result<std::optional<Message>> CommandServer::tryReceive() {
  return guarded<Result<std::optional<Message>>>("receive", [&] { return impl_->receive(0); });
}

Status CommandServer::reply(const Message& message, std::chrono::milliseconds timeout) {
  return guarded<Status>("reply", [&] { return impl_->reply(message, timeout); });
}

const std::string& CommandServer::endpoint() const { return impl_->endpoint; }

}  // namespace runrec::bus
