// The history server: a REP socket answered from a read-only connection to the log.
#include "runrec/engine/history.hpp"

#include <spdlog/spdlog.h>

namespace runrec::engine {

using nlohmann::json;

bus::RunEvent toRunEvent(const Event& e) { return {e.runId, e.seq, e.type, e.ts, e.commandId, e.payload}; }

json answerHistory(EventLog& log, const bus::HistoryRequest& r) {
  if (r.op == bus::HistoryRequest::Op::kRuns) {
    auto runs = log.runs();
    if (!runs) return bus::historyError("history: " + runs.error().message);
    json list = json::array();
    bool more = false;
    for (const auto& row : *runs) {
      if (static_cast<std::int64_t>(list.size()) >= r.limit) {
        more = true;
        break;
      }
      auto last = log.lastSeq(row.runId);
      if (!last) return bus::historyError("history: " + last.error().message);
      // runFinished is always a run's last event: one primary-key lookup tells.
      auto tail = log.events(row.runId, *last, 1);
      if (!tail) return bus::historyError("history: " + tail.error().message);
      bool finished = !tail->empty() && tail->back().type == event::kRunFinished;
      list.push_back({{"runId", row.runId},
                      {"createdAt", row.createdAt},
                      {"protocolName", row.protocolName},
                      {"robot", row.robot},
                      {"lastSeq", *last},
                      {"finished", finished},
                      {"status", finished ? tail->back().payload.value("status", json()) : json("running")}});
    }
    return {{"v", bus::kEventsVersion}, {"ok", true}, {"runs", list}, {"more", more}};
  }
  auto row = log.run(r.runId);
  if (!row) {
    if (row.error().code == ErrorCode::kNotFound) return bus::historyError("unknown run \"" + r.runId + "\"");
    return bus::historyError("history: " + row.error().message);
  }
  // lastSeq first: the page may then only hold more, never fewer, than lastSeq promises.
  auto last = log.lastSeq(r.runId);
  if (!last) return bus::historyError("history: " + last.error().message);
  auto events = log.events(r.runId, r.fromSeq, r.limit);
  if (!events) return bus::historyError("history: " + events.error().message);
  json list = json::array();
  bool finished = false;
  std::int64_t lastSeq = *last;
  for (const auto& e : *events) {
    list.push_back(bus::eventJson(toRunEvent(e)));
    if (e.type == event::kRunFinished) finished = true;
    lastSeq = std::max(lastSeq, e.seq);
  }
  if (!finished && (events->empty() || events->back().seq < lastSeq)) {
    auto tail = log.events(r.runId, lastSeq, 1);  // runFinished is always the last event
    if (!tail) return bus::historyError("history: " + tail.error().message);
    finished = !tail->empty() && tail->back().type == event::kRunFinished;
  }
  return {{"v", bus::kEventsVersion}, {"ok", true},       {"runId", r.runId},    {"fromSeq", r.fromSeq},
          {"events", list},           {"lastSeq", lastSeq}, {"finished", finished}};
}

Result<std::unique_ptr<HistoryServer>> HistoryServer::start(bus::Context& ctx, const std::filesystem::path& db,
                                                            const std::string& endpoint,
                                                            const bus::CurveServer* curve) {
  auto log = EventLog::open(db, LogOptions{Sync::kNormal, true, false});
  if (!log) return tl::unexpected(log.error());
  auto responder = bus::HistoryResponder::bind(ctx, endpoint, curve);
  if (!responder) return fail(ErrorCode::kBus, responder.error().message);
  std::unique_ptr<HistoryServer> s(new HistoryServer());
  s->endpoint_ = endpoint;
  s->log_ = std::move(*log);
  s->responder_ = std::move(*responder);
  s->thread_ = std::thread([srv = s.get()] {
    while (!srv->stop_.load()) {
      auto req = srv->responder_->receive(std::chrono::milliseconds(100));
      if (!req) {
        spdlog::warn("engine: history: {}", req.error().message);
        continue;
      }
      if (!*req) continue;
      json answer;
      try {
        answer = answerHistory(*srv->log_, **req);
      } catch (const std::exception& e) {  // never let a request take the server down
        answer = bus::historyError(std::string("history: internal error: ") + e.what());
      }
      if (auto st = srv->responder_->reply(answer); !st) spdlog::warn("engine: history reply: {}", st.error().message);
    }
  });
  return s;
}

HistoryServer::~HistoryServer() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

}  // namespace runrec::engine
