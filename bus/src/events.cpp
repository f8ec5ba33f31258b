// Live run events: PUB publisher, history REQ/REP codec and sockets, and the gap-free
// subscriber (docs/events-wire.md).
#include "runrec/bus/events.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <deque>
#include <map>
#include <zmq.hpp>

#include "curve_internal.hpp"
#include "ipc_file.hpp"
#include "wire.hpp"

namespace runrec::bus {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxIpcPath = 107;
constexpr std::int64_t kMaxFrameBytes = 1024 * 1024;  // ZeroMQ drops peers sending more

tl::unexpected<Error> failWith(ErrorCode code, std::string message) {
  return tl::unexpected(Error{code, std::move(message)});
}

bool isInteger(const json& j) { return j.is_number_integer() || j.is_number_unsigned(); }

std::string shown(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

}  // namespace

Result<std::string> historyEndpoint(const std::string& e) {
  auto out = outcomeEndpoint(e);  // validates the endpoint; tcp -> port+1
  if (!out) {
    Error er = out.error();
    for (std::string from : {"the outcome channel"}) {
      auto at = er.message.find(from);
      if (at != std::string::npos) er.message.replace(at, from.size(), "the history endpoint");
    }
    return tl::unexpected(er);
  }
  if (e.rfind("tcp://", 0) == 0) return *out;
  if (e.rfind("ipc://", 0) == 0 && e.size() - 6 + 8 > kMaxIpcPath)
    return failWith(ErrorCode::kInvalidEndpoint,
                    fmt::format("bus endpoint \"{}\": the ipc path is too long with \".history\" ({} bytes; the "
                                "limit for a Unix socket path is {})",
                                e, e.size() - 6 + 8, kMaxIpcPath));
  return e + ".history";
}

// ---------------------------------------------------------------------------------------
// Event codec

std::string runTopicPrefix(std::string_view runId) {
  return runId.empty() ? std::string("run/") : fmt::format("run/{}/", runId);
}

std::string eventTopic(std::string_view runId, std::string_view type) { return fmt::format("run/{}/{}", runId, type); }

json eventJson(const RunEvent& e) {
  return json{{"v", kEventsVersion},
              {"runId", e.runId},
              {"seq", e.seq},
              {"type", e.type},
              {"ts", e.ts},
              {"commandId", e.commandId.empty() ? json() : json(e.commandId)},
              {"payload", e.payload}};
}

std::string encodeEvent(const RunEvent& e) {
  return eventJson(e).dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<RunEvent> eventFromJson(const json& j) {
  auto bad = [](const char* field, const std::string& why) {
    return failWith(ErrorCode::kMalformed, fmt::format("event: \"{}\": {}", field, why));
  };
  if (!j.is_object()) return failWith(ErrorCode::kMalformed, "event: expected a JSON object, got " + shown(j));
  auto v = j.find("v");
  if (v == j.end() || !isInteger(*v)) return bad("v", "missing or not an integer");
  if (*v != kEventsVersion)
    return bad("v", fmt::format("unsupported version {} (this build speaks version {})", shown(*v), kEventsVersion));
  RunEvent e;
  auto str = [&](const char* k, std::string& out) -> bool {
    auto it = j.find(k);
    if (it == j.end() || !it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  if (!str("runId", e.runId) || e.runId.empty()) return bad("runId", "expected a non-empty string");
  if (!str("type", e.type)) return bad("type", "expected a string");
  if (!str("ts", e.ts)) return bad("ts", "expected a string");
  auto seq = j.find("seq");
  if (seq == j.end() || !isInteger(*seq) || seq->get<std::int64_t>() < 1)
    return bad("seq", "expected an integer >= 1" + (seq == j.end() ? std::string() : ", got " + shown(*seq)));
  e.seq = seq->get<std::int64_t>();
  auto cid = j.find("commandId");
  if (cid != j.end() && !cid->is_null()) {
    if (!cid->is_string()) return bad("commandId", "expected a string or null");
    e.commandId = cid->get<std::string>();
  }
  auto payload = j.find("payload");
  if (payload == j.end() || !payload->is_object()) return bad("payload", "expected an object");
  e.payload = *payload;
  return e;
}

Result<RunEvent> decodeEvent(std::string_view body) {
  json j;
  std::string why;
  if (!detail::parseJson(body, j, why)) return failWith(ErrorCode::kMalformed, "event: not JSON (" + why + ")");
  return eventFromJson(j);
}

// ---------------------------------------------------------------------------------------
// History codec

json toJson(const HistoryRequest& r) {
  if (r.op == HistoryRequest::Op::kRuns) return {{"v", kEventsVersion}, {"op", "runs"}, {"limit", r.limit}};
  return {{"v", kEventsVersion}, {"op", "events"}, {"runId", r.runId}, {"fromSeq", r.fromSeq}, {"limit", r.limit}};
}

json historyError(const std::string& message) { return {{"v", kEventsVersion}, {"ok", false}, {"error", message}}; }

Result<HistoryRequest> parseHistoryRequest(std::string_view frame) {
  auto bad = [](const std::string& why) { return failWith(ErrorCode::kMalformed, "history request: " + why); };
  if (frame.size() > kMaxHistoryRequestBytes)
    return bad(fmt::format("{} bytes is too long (at most {})", frame.size(), kMaxHistoryRequestBytes));
  json j;
  std::string why;
  if (!detail::parseJson(frame, j, why)) return bad("not JSON (" + why + ")");
  if (!j.is_object()) return bad("expected a JSON object, got " + shown(j));
  auto v = j.find("v");
  if (v == j.end()) return bad("\"v\": missing (expected 1)");
  if (!isInteger(*v) || *v != kEventsVersion)
    return bad(fmt::format("\"v\": unsupported version {} (this build speaks version {})", shown(*v), kEventsVersion));
  auto op = j.find("op");
  if (op == j.end() || !op->is_string()) return bad("\"op\": expected \"events\" or \"runs\"");
  HistoryRequest r;
  std::vector<std::string> allowed = {"v", "op", "limit"};
  if (*op == "events") {
    r.op = HistoryRequest::Op::kEvents;
    allowed.insert(allowed.end(), {"runId", "fromSeq"});
    auto run = j.find("runId");
    if (run == j.end() || !run->is_string() || run->get_ref<const std::string&>().empty())
      return bad("\"runId\": expected the run id (a non-empty string)" +
                 (run == j.end() ? std::string() : ", got " + shown(*run)));
    if (run->get_ref<const std::string&>().size() > 256) return bad("\"runId\": longer than 256 bytes");
    r.runId = run->get<std::string>();
    if (auto f = j.find("fromSeq"); f != j.end()) {
      if (!isInteger(*f) || (f->is_number_integer() && f->get<std::int64_t>() < 1) ||
          (f->is_number_unsigned() && f->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)))
        return bad("\"fromSeq\": expected an integer >= 1, got " + shown(*f));
      r.fromSeq = f->get<std::int64_t>();
    }
  } else if (*op == "runs") {
    r.op = HistoryRequest::Op::kRuns;
    r.limit = kMaxHistoryLimit;
  } else {
    return bad(fmt::format("\"op\": unknown operation {} (expected \"events\" or \"runs\")", shown(*op)));
  }
  if (auto l = j.find("limit"); l != j.end()) {
    if (!isInteger(*l) || (l->is_number_integer() && l->get<std::int64_t>() < 1) ||
        (l->is_number_unsigned() && l->get<std::uint64_t>() > static_cast<std::uint64_t>(kMaxHistoryLimit)) ||
        l->get<std::int64_t>() > kMaxHistoryLimit)
      return bad(fmt::format("\"limit\": expected an integer in 1..{}, got {}", kMaxHistoryLimit, shown(*l)));
    r.limit = l->get<std::int64_t>();
  }
  for (auto& [k, _] : j.items())
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      return bad(fmt::format("unknown field \"{}\" for op \"{}\"", k, op->get<std::string>()));
  return r;
}

// ---------------------------------------------------------------------------------------
// HistoryResponder

struct HistoryResponder::Impl {
  Impl(zmq::context_t& ctx, std::string ep) : rep(ctx, zmq::socket_type::rep), endpoint(std::move(ep)) {}
  detail::IpcFile file;  // destroyed after the socket is closed
  zmq::socket_t rep;
  std::string endpoint;
};

HistoryResponder::HistoryResponder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HistoryResponder::~HistoryResponder() = default;
const std::string& HistoryResponder::endpoint() const { return impl_->endpoint; }

Result<std::unique_ptr<HistoryResponder>> HistoryResponder::bind(Context& ctx, const std::string& endpoint,
                                                                 const CurveServer* curve) {
  try {
    auto impl = std::make_unique<Impl>(ctx.zmq(), endpoint);
    impl->rep.set(zmq::sockopt::linger, 0);
    detail::secureServer(impl->rep, curve);
    impl->rep.set(zmq::sockopt::maxmsgsize, kMaxFrameBytes);
    impl->rep.bind(endpoint);
    impl->file.remember(endpoint);
    return std::unique_ptr<HistoryResponder>(new HistoryResponder(std::move(impl)));
  } catch (const zmq::error_t& e) {
    return failWith(ErrorCode::kIo, fmt::format("bus: bind history {}: {}", endpoint, e.what()));
  }
}

Result<std::optional<HistoryRequest>> HistoryResponder::receive(std::chrono::milliseconds timeout) {
  try {
    zmq::pollitem_t item{impl_->rep.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) return std::optional<HistoryRequest>{};
    zmq::message_t msg;
    if (!impl_->rep.recv(msg, zmq::recv_flags::dontwait)) return std::optional<HistoryRequest>{};
    int parts = 1;
    while (msg.more()) {  // consume the whole multi-part message before answering
      zmq::message_t extra;
      if (!impl_->rep.recv(extra, zmq::recv_flags::none)) break;
      parts++;
      if (!extra.more()) break;
    }
    Result<HistoryRequest> req =
        parts > 1 ? failWith(ErrorCode::kMalformed, fmt::format("history request: expected one frame, got a {}-part message", parts))
                  : parseHistoryRequest(msg.to_string_view());
    if (!req) {
      if (auto st = reply(historyError(req.error().message)); !st) return tl::unexpected(st.error());
      return std::optional<HistoryRequest>{};
    }
    return std::optional<HistoryRequest>(std::move(*req));
  } catch (const zmq::error_t& e) {
    return failWith(ErrorCode::kIo, fmt::format("bus: history receive: {}", e.what()));
  }
}

Status HistoryResponder::reply(const json& answer) {
  try {
    std::string text = answer.dump(-1, ' ', false, json::error_handler_t::replace);
    impl_->rep.send(zmq::buffer(text), zmq::send_flags::none);
    return {};
  } catch (const zmq::error_t& e) {
    return failWith(ErrorCode::kIo, fmt::format("bus: history reply: {}", e.what()));
  }
}

// ---------------------------------------------------------------------------------------
// HistoryClient: REQ, recreated after a timeout (a REQ that lost its reply is stuck).

struct HistoryClient::Impl {
  zmq::context_t* ctx;
  std::string endpoint;
  std::chrono::milliseconds timeout;
  std::unique_ptr<zmq::socket_t> req;
  std::optional<CurveClientKeys> curve;

  void open() {
    req = std::make_unique<zmq::socket_t>(*ctx, zmq::socket_type::req);
    req->set(zmq::sockopt::linger, 0);
    detail::secureClient(*req, curve ? &*curve : nullptr);
    req->set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(256) * 1024 * 1024);
    req->connect(endpoint);
  }
};

HistoryClient::HistoryClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HistoryClient::~HistoryClient() = default;

Result<std::unique_ptr<HistoryClient>> HistoryClient::connect(Context& ctx, const std::string& endpoint,
                                                              std::chrono::milliseconds timeout,
                                                              std::optional<CurveClientKeys> curve) {
  try {
    auto impl = std::make_unique<Impl>();
    impl->curve = std::move(curve);
    impl->ctx = &ctx.zmq();
    impl->endpoint = endpoint;
    impl->timeout = timeout;
    impl->open();
    return std::unique_ptr<HistoryClient>(new HistoryClient(std::move(impl)));
  } catch (const zmq::error_t& e) {
    return failWith(ErrorCode::kIo, fmt::format("bus: connect history {}: {}", endpoint, e.what()));
  }
}

Result<json> HistoryClient::raw(std::string_view frame) {
  try {
    auto& s = *impl_->req;
    if (!s.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::dontwait)) {
      impl_->open();
      return failWith(ErrorCode::kTimeout, "bus: no engine history at " + impl_->endpoint);
    }
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, impl_->timeout) <= 0) {
      impl_->open();
      return failWith(ErrorCode::kTimeout, fmt::format("bus: the engine's history at {} did not answer within {} ms",
                                                        impl_->endpoint, impl_->timeout.count()));
    }
    zmq::message_t msg;
    if (!s.recv(msg, zmq::recv_flags::dontwait)) {
      impl_->open();
      return failWith(ErrorCode::kTimeout, "bus: no answer from " + impl_->endpoint);
    }
    json answer;
    std::string why;
    if (!detail::parseJson(msg.to_string_view(), answer, why) || !answer.is_object() || !answer.contains("ok") ||
        !answer["ok"].is_boolean())
      return failWith(ErrorCode::kMalformed, "bus: the history answer is not a JSON object with \"ok\"");
    if (!answer["ok"].get<bool>())
      return failWith(ErrorCode::kRejected, answer.contains("error") && answer["error"].is_string()
                                                ? answer["error"].get<std::string>()
                                                : std::string("history: request refused"));
    return answer;
  } catch (const zmq::error_t& e) {
    impl_->open();
    return failWith(ErrorCode::kIo, fmt::format("bus: history request to {}: {}", impl_->endpoint, e.what()));
  }
}

Result<json> HistoryClient::events(const std::string& runId, std::int64_t fromSeq, std::int64_t limit) {
  HistoryRequest r;
  r.runId = runId;
  r.fromSeq = fromSeq;
  r.limit = limit;
  auto a = raw(toJson(r).dump());
  if (!a) return a;
  if (!a->contains("events") || !(*a)["events"].is_array() || !a->contains("lastSeq") || !isInteger((*a)["lastSeq"]))
    return failWith(ErrorCode::kMalformed, "bus: history events answer lacks \"events\" or \"lastSeq\"");
  return a;
}

Result<json> HistoryClient::runs(std::int64_t limit) {
  HistoryRequest r;
  r.op = HistoryRequest::Op::kRuns;
  r.limit = limit;
  auto a = raw(toJson(r).dump());
  if (!a) return a;
  if (!a->contains("runs") || !(*a)["runs"].is_array())
    return failWith(ErrorCode::kMalformed, "bus: history runs answer lacks \"runs\"");
  return a;
}

// ---------------------------------------------------------------------------------------
// EventPublisher

struct EventPublisher::Impl {
  // XPUB: a PUB that also hands over the subscriptions it receives (a SUB sees no
  // difference), so the engine can tell whether anyone listens.
  Impl(zmq::context_t& ctx, std::string ep) : pub(ctx, zmq::socket_type::xpub), endpoint(std::move(ep)) {}
  detail::IpcFile file;  // destroyed after the socket is closed
  zmq::socket_t pub;
  std::string endpoint;
  std::uint64_t published = 0;
  // Distinct subscribed prefixes: XPUB passes the first subscription to a prefix and the
  // unsubscription (explicit, or the last subscriber's disconnect) when none is left.
  std::int64_t subscriptions = 0;
};

EventPublisher::EventPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EventPublisher::~EventPublisher() = default;
const std::string& EventPublisher::endpoint() const { return impl_->endpoint; }
std::uint64_t EventPublisher::published() const { return impl_->published; }

Result<std::unique_ptr<EventPublisher>> EventPublisher::bind(Context& ctx, const std::string& endpoint, int sndhwm,
                                                             const CurveServer* curve) {
  if (auto h = historyEndpoint(endpoint); !h) return tl::unexpected(h.error());
  try {
    auto impl = std::make_unique<Impl>(ctx.zmq(), endpoint);
    impl->pub.set(zmq::sockopt::linger, 0);
    impl->pub.set(zmq::sockopt::sndhwm, sndhwm);
    detail::secureServer(impl->pub, curve);
    // Nothing a subscriber sends can reach the engine beyond its subscriptions; keep those small.
    impl->pub.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(4096));
    impl->pub.bind(endpoint);
    impl->file.remember(endpoint);
    return std::unique_ptr<EventPublisher>(new EventPublisher(std::move(impl)));
  } catch (const zmq::error_t& e) {
    return failWith(ErrorCode::kIo, fmt::format("bus: bind events {}: {}", endpoint, e.what()));
  }
}

bool EventPublisher::hasSubscribers() {
  try {
    zmq::message_t m;
    while (impl_->pub.recv(m, zmq::recv_flags::dontwait)) {
      if (m.size() == 0) continue;
      const auto kind = static_cast<const unsigned char*>(m.data())[0];
      if (kind == 1) impl_->subscriptions++;
      if (kind == 0 && impl_->subscriptions > 0) impl_->subscriptions--;
    }
  } catch (const zmq::error_t& e) {
    spdlog::debug("bus: events {}: reading subscriptions: {}", impl_->endpoint, e.what());
    return true;  // unknown: publish
  }
  return impl_->subscriptions > 0;
}

void EventPublisher::publish(std::string_view topic, std::string_view body) {
  try {
    // A PUB socket never blocks: at a subscriber's HWM the message is dropped for it.
    impl_->pub.send(zmq::buffer(topic.data(), topic.size()), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    impl_->pub.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
    impl_->published++;
  } catch (const zmq::error_t& e) {
    spdlog::debug("bus: publish {}: {}", topic, e.what());
  }
}

// ---------------------------------------------------------------------------------------
// EventSubscriber

struct EventSubscriber::Impl {
  Impl(zmq::context_t& ctx) : sub(ctx, zmq::socket_type::sub) {}
  zmq::socket_t sub;
  std::unique_ptr<HistoryClient> history;
  SubscribeOptions options;
  std::atomic<bool> stopFlag{false};
  SubscribeStats stats;

  struct Track {
    std::int64_t delivered = 0;
    bool finished = false;
  };
  std::map<std::string, Track> tracks;
  struct Live {
    RunEvent event;
    json body;
  };
  std::deque<Live> buffered;  // live events read while catching up from history
  bool quit = false;          // the callback asked to stop

  Track& track(const std::string& runId) {
    auto it = tracks.find(runId);
    if (it == tracks.end()) it = tracks.emplace(runId, Track{options.fromSeq - 1, false}).first;
    return it->second;
  }

  bool deliver(const Callback& cb, Track& t, const RunEvent& e, const json& body) {
    t.delivered = e.seq;
    if (e.type == "runFinished") t.finished = true;
    stats.delivered++;
    if (!cb(e, body)) quit = true;
    return !quit;
  }

  // Reads the live socket without blocking into `buffered`.
  Status drainLive() {
    for (;;) {
      auto m = readLive(std::chrono::milliseconds(0));
      if (!m) return tl::unexpected(m.error());
      if (!*m) return {};
      buffered.push_back(std::move(**m));
    }
  }

  // One live event, waiting up to `timeout`; nullopt on timeout. Malformed ones are skipped.
  Result<std::optional<Live>> readLive(std::chrono::milliseconds timeout) {
    try {
      zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, timeout) <= 0) return std::optional<Live>{};
      zmq::message_t topic, body;
      if (!sub.recv(topic, zmq::recv_flags::dontwait)) return std::optional<Live>{};
      if (!topic.more()) {
        spdlog::warn("bus: events: a one-frame message (expected topic + body); ignored");
        return std::optional<Live>{};
      }
      (void)sub.recv(body, zmq::recv_flags::none);
      while (body.more()) {
        zmq::message_t extra;
        (void)sub.recv(extra, zmq::recv_flags::none);
        if (!extra.more()) break;
      }
      json j;
      std::string why;
      if (!detail::parseJson(body.to_string_view(), j, why)) {
        spdlog::warn("bus: events: a body that is not JSON ({}); ignored", why);
        return std::optional<Live>{};
      }
      auto e = eventFromJson(j);
      if (!e) {
        spdlog::warn("bus: {}; ignored", e.error().message);
        return std::optional<Live>{};
      }
      if (!options.runId.empty() && e->runId != options.runId) return std::optional<Live>{};
      return std::optional<Live>(Live{std::move(*e), std::move(j)});
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) return std::optional<Live>{};  // a signal: the caller checks stop()
      return failWith(ErrorCode::kIo, fmt::format("bus: events receive: {}", e.what()));
    }
  }

  // Delivers history events of `runId` after what was delivered, page by page, until the
  // log's end at the time of reading (or `upTo`). Live events arriving meanwhile are buffered.
  Status catchUp(const Callback& cb, const std::string& runId, std::int64_t upTo = INT64_MAX) {
    Track& t = track(runId);
    while (!quit && !stopFlag.load() && t.delivered < upTo) {
      auto page = history->events(runId, t.delivered + 1, options.pageSize);
      if (!page) return tl::unexpected(page.error());
      const json& events = (*page)["events"];
      std::int64_t lastSeq = (*page)["lastSeq"].get<std::int64_t>();
      for (const json& body : events) {
        auto e = eventFromJson(body);
        if (!e) return tl::unexpected(e.error());
        if (e->runId != runId || e->seq != t.delivered + 1)
          return failWith(ErrorCode::kMalformed, fmt::format("bus: history answered seq {} of run {} when {} of {} "
                                                             "was asked for",
                                                             e->seq, e->runId, t.delivered + 1, runId));
        stats.fromHistory++;
        if (!deliver(cb, t, *e, body)) return {};
      }
      if (auto st = drainLive(); !st) return st;
      if (events.empty() || t.delivered >= lastSeq) break;
    }
    if (t.delivered < upTo && upTo != INT64_MAX && !quit && !stopFlag.load())
      return failWith(ErrorCode::kMalformed, fmt::format("bus: run {}: the live stream has seq {} but history ends "
                                                         "at {}",
                                                         runId, upTo + 1, t.delivered));
    return {};
  }

  // A live event: skip it if delivered already, backfill a gap before it, then deliver.
  Status onLive(const Callback& cb, const Live& l) {
    Track& t = track(l.event.runId);
    if (l.event.seq <= t.delivered) {
      stats.duplicates++;
      return {};
    }
    if (l.event.seq > t.delivered + 1) {
      stats.gaps++;
      if (auto st = catchUp(cb, l.event.runId, l.event.seq - 1); !st) return st;
      if (quit || stopFlag.load()) return {};
    }
    Track& t2 = track(l.event.runId);
    if (l.event.seq != t2.delivered + 1) {  // the backfill read past it
      stats.duplicates++;
      return {};
    }
    stats.fromLive++;
    deliver(cb, t2, l.event, l.body);
    return {};
  }

  bool done() const {
    if (quit || stopFlag.load()) return true;
    if (options.runId.empty()) return false;
    auto it = tracks.find(options.runId);
    return it != tracks.end() && it->second.finished;
  }

  // Nothing live for a while: ask history whether anything was missed at the tail.
  Status idleCheck(const Callback& cb) {
    if (!options.runId.empty()) return catchUp(cb, options.runId);
    auto runs = history->runs(kMaxHistoryLimit);
    if (!runs) return tl::unexpected(runs.error());
    const json& list = (*runs)["runs"];
    for (auto it = list.rbegin(); it != list.rend() && !quit; ++it) {  // oldest first
      if (!it->is_object() || !(*it)["runId"].is_string() || !isInteger((*it)["lastSeq"])) continue;
      std::string id = (*it)["runId"].get<std::string>();
      if ((*it)["lastSeq"].get<std::int64_t>() > track(id).delivered)
        if (auto st = catchUp(cb, id); !st) return st;
    }
    return {};
  }

  Status run(const Callback& cb) {
    if (!options.runId.empty()) {
      if (auto st = catchUp(cb, options.runId); !st) return st;
    } else {
      auto runs = history->runs(kMaxHistoryLimit);
      if (!runs) return tl::unexpected(runs.error());
      const json& list = (*runs)["runs"];
      for (auto it = list.rbegin(); it != list.rend() && !quit && !stopFlag.load(); ++it)
        if (it->is_object() && (*it)["runId"].is_string())
          if (auto st = catchUp(cb, (*it)["runId"].get<std::string>()); !st) return st;
    }
    if (!options.follow) return {};
    while (!done()) {
      while (!buffered.empty() && !done()) {
        Live l = std::move(buffered.front());
        buffered.pop_front();
        if (auto st = onLive(cb, l); !st) return st;
      }
      if (done()) break;
      auto m = readLive(options.idleCheck);
      if (!m) return tl::unexpected(m.error());
      if (*m) {
        if (auto st = onLive(cb, **m); !st) return st;
      } else if (auto st = idleCheck(cb); !st) {
        return st;
      }
    }
    return {};
  }
};

EventSubscriber::EventSubscriber(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EventSubscriber::~EventSubscriber() = default;

Result<std::unique_ptr<EventSubscriber>> EventSubscriber::connect(Context& ctx, const std::string& eventsEndpoint,
                                                                  SubscribeOptions options) {
  auto hist = historyEndpoint(eventsEndpoint);
  if (!hist) return tl::unexpected(hist.error());
  if (options.fromSeq < 1) return failWith(ErrorCode::kInvalidEndpoint, "subscribe: fromSeq must be >= 1");
  if (options.pageSize < 1 || options.pageSize > kMaxHistoryLimit)
    return failWith(ErrorCode::kInvalidEndpoint, fmt::format("subscribe: pageSize must be 1..{}", kMaxHistoryLimit));
  auto history = HistoryClient::connect(ctx, *hist, options.requestTimeout, options.curve);
  if (!history) return tl::unexpected(history.error());
  try {
    auto impl = std::make_unique<Impl>(ctx.zmq());
    impl->options = options;
    impl->history = std::move(*history);
    impl->sub.set(zmq::sockopt::linger, 0);
    impl->sub.set(zmq::sockopt::rcvhwm, options.rcvhwm);
    detail::secureClient(impl->sub, impl->options.curve ? &*impl->options.curve : nullptr);
    // Live first: everything published from now on is either received or seen as a gap.
    impl->sub.set(zmq::sockopt::subscribe, runTopicPrefix(options.runId));
    impl->sub.connect(eventsEndpoint);
    return std::unique_ptr<EventSubscriber>(new EventSubscriber(std::move(impl)));
  } catch (const zmq::error_t& e) {
    return failWith(ErrorCode::kIo, fmt::format("bus: connect events {}: {}", eventsEndpoint, e.what()));
  }
}

Status EventSubscriber::run(const Callback& onEvent) { return impl_->run(onEvent); }
void EventSubscriber::stop() { impl_->stopFlag.store(true); }
SubscribeStats EventSubscriber::stats() const { return impl_->stats; }

}  // namespace runrec::bus
