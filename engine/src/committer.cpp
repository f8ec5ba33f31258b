// The engine's log thread (committer.hpp).
#include "committer.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace runrec::engine {

Status appendAndCommit(EventLog& log, const std::vector<PendingEvent>& events) {
  if (events.empty()) return log.commit();
  if (auto st = log.begin(); !st) return st;
  for (const auto& p : events)
    if (auto st = log.append(p.event, p.payload); !st) return st;
  return log.commit();
}

Committer::Committer(EventLog& log, AfterCommit afterCommit) : log_(log), afterCommit_(std::move(afterCommit)) {
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  try {
    thread_ = std::thread([this] { loop(); });
  } catch (...) {
    ::close(wakeFd_);
    throw;
  }
}

Committer::~Committer() {
  if (inFlight_) (void)take(true);
  {
    std::lock_guard lk(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  ::close(wakeFd_);
}

void Committer::submit(std::vector<PendingEvent> events, bool afterCommit) {
  inFlight_ = true;
  inFlightEvents_ = events.size();
  {
    std::lock_guard lk(mutex_);
    work_.events = std::move(events);
    work_.status = {};
    runAfterCommit_ = afterCommit && afterCommit_;
    submitted_ = true;
    done_.store(false, std::memory_order_relaxed);
  }
  cv_.notify_all();
}

std::optional<Committer::Done> Committer::take(bool wait) {
  if (!inFlight_) return std::nullopt;
  if (!wait && !done_.load(std::memory_order_acquire)) return std::nullopt;
  std::unique_lock lk(mutex_);
  writerWaits_ = true;
  cv_.wait(lk, [&] { return done_.load(std::memory_order_relaxed); });
  writerWaits_ = false;
  std::uint64_t signalled;
  while (::read(wakeFd_, &signalled, sizeof signalled) < 0 && errno == EINTR) {
  }
  inFlight_ = false;
  inFlightEvents_ = 0;
  done_.store(false, std::memory_order_relaxed);
  return std::move(work_);
}

void Committer::loop() {
  std::unique_lock lk(mutex_);
  while (true) {
    cv_.wait(lk, [&] { return stop_ || submitted_; });
    if (!submitted_) return;  // stopped with nothing to do
    submitted_ = false;
    // The group is this thread's until done_ is set; the writer does not touch the log
    // meanwhile (it waits in take()).
    std::vector<PendingEvent> events = std::move(work_.events);
    const bool after = runAfterCommit_;
    lk.unlock();
    // Nothing thrown here may end the process: a failure is the group's status, like a
    // failed write, and a failure after the commit only loses the live events.
    Status st;
    try {
      st = appendAndCommit(log_, events);
    } catch (const std::exception& e) {
      st = fail(ErrorCode::kIo, std::string("the log thread could not write a group: ") + e.what());
    }
    const auto at = Clock::now();
    if (st && after && !events.empty()) {
      try {
        afterCommit_(events);
      } catch (const std::exception& e) {
        spdlog::warn("engine: live events of events {}..{} not published: {}", events.front().event.seq,
                     events.back().event.seq, e.what());
      }
    }
    lk.lock();
    work_.events = std::move(events);
    work_.status = std::move(st);
    work_.committedAt = at;
    done_.store(true, std::memory_order_release);
    if (writerWaits_) cv_.notify_all();
    const std::uint64_t one = 1;
    while (::write(wakeFd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace runrec::engine
