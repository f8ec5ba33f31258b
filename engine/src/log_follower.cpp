// The log follower (log_follower.hpp).
#include "runrec/engine/log_follower.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace runrec::engine {

Result<std::unique_ptr<LogFollower>> LogFollower::start(const std::filesystem::path& db, std::string runId,
                                                        std::chrono::milliseconds period) {
  auto log = EventLog::open(db, LogOptions{Sync::kNormal, true, false});
  if (!log) return tl::unexpected(log.error());
  std::unique_ptr<LogFollower> f(new LogFollower(std::move(*log), std::move(runId), period));
  f->thread_ = std::thread([p = f.get()] { p->loop(); });
  return f;
}

LogFollower::LogFollower(std::unique_ptr<EventLog> log, std::string runId, std::chrono::milliseconds period)
    : log_(std::move(log)), runId_(std::move(runId)), period_(period) {}

LogFollower::~LogFollower() {
  {
    std::lock_guard lk(stopMutex_);
    stop_ = true;
  }
  stopCv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status LogFollower::catchUp() {
  return log_->forEachEvent(
      runId_,
      [&](Event& e) -> Status {
        apply(fold_.state, std::move(e), &fold_.issues);
        foldedSeq_.store(fold_.state.lastSeq, std::memory_order_relaxed);
        return {};
      },
      fold_.state.lastSeq + 1);
}

void LogFollower::loop() {
  // Background work: at nice 10 the follower gets about a tenth of a core the engine, its
  // log thread or the runner also want, and all of an idle one (lowering needs no
  // privilege). What it has not folded by cleanup, finish() folds. Started by a writer
  // thread raised to SCHED_FIFO (a board moving in real time, hardware/thread_priority.hpp)
  // it inherits that, which nice does not touch: there, at a few hundred events a second,
  // it keeps up on a loaded machine, so cleanup never folds a long tail before the
  // post-run home.
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10) != 0)
    spdlog::debug("engine: log follower: cannot lower its priority: {}", std::strerror(errno));
  std::unique_lock lk(stopMutex_);
  while (!stop_) {
    lk.unlock();
    if (!error_) {
      if (auto st = catchUp(); !st) {
        // Reported by finish(); the caller then folds from scratch.
        spdlog::debug("engine: log follower for run {}: {}", runId_, st.error().message);
        error_ = st.error();
      }
    }
    lk.lock();
    stopCv_.wait_for(lk, period_, [&] { return stop_; });
  }
}

Result<FollowedFold> LogFollower::finish() {
  {
    std::lock_guard lk(stopMutex_);
    stop_ = true;
  }
  stopCv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (error_) return tl::unexpected(*error_);
  if (auto st = catchUp(); !st) return tl::unexpected(st.error());
  return std::move(fold_);
}

std::int64_t LogFollower::foldedSeq() const { return foldedSeq_.load(std::memory_order_relaxed); }

}  // namespace runrec::engine
