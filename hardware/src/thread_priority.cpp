// The feeding thread's scheduling: SCHED_FIFO, else a negative nice, else a warning.
#include "runrec/hardware/thread_priority.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace runrec::hardware {

std::optional<FeedPriority> parseFeedPriority(std::string_view text) {
  if (text == "auto") return FeedPriority::kAuto;
  if (text == "realtime") return FeedPriority::kRealtime;
  if (text == "normal") return FeedPriority::kNormal;
  return std::nullopt;
}

const char* toString(FeedPriority priority) {
  switch (priority) {
    case FeedPriority::kAuto: return "auto";
    case FeedPriority::kRealtime: return "realtime";
    case FeedPriority::kNormal: return "normal";
  }
  return "?";
}

FeedPriority resolveFeedPriority(FeedPriority priority, bool realTimeMotion) {
  if (priority != FeedPriority::kAuto) return priority;
  return realTimeMotion ? FeedPriority::kRealtime : FeedPriority::kNormal;
}

bool robotMovesInRealTime(std::string_view robotSpec) { return robotSpec.rfind("serial:", 0) == 0; }

namespace {

int threadId() { return static_cast<int>(::gettid()); }

// The calling thread's nice (per thread on Linux), or 0 if it cannot be read.
int currentNice() {
  errno = 0;
  int n = ::getpriority(PRIO_PROCESS, static_cast<id_t>(threadId()));
  return errno == 0 ? n : 0;
}

}  // namespace

PriorityOutcome applyFeedPriority(FeedPriority priority) {
  PriorityOutcome out;
  if (priority != FeedPriority::kRealtime) {
    out.description = "normal";
    return out;
  }
  sched_param param{};
  param.sched_priority = kFeedFifoPriority;
  int fifo = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param);
  if (fifo == 0) {
    out.how = PriorityOutcome::How::kFifo;
    out.description = "SCHED_FIFO " + std::to_string(kFeedFifoPriority);
    return out;
  }
  if (currentNice() <= kFeedNice) {  // already at least as favoured
    out.how = PriorityOutcome::How::kNice;
    out.description = "nice " + std::to_string(currentNice());
    return out;
  }
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(threadId()), kFeedNice) == 0) {
    out.how = PriorityOutcome::How::kNice;
    out.description = "nice " + std::to_string(kFeedNice);
    return out;
  }
  int niceErr = errno;
  out.how = PriorityOutcome::How::kDenied;
  out.description = "normal";
  out.warning = std::string("cannot raise the thread that feeds the board (SCHED_FIFO ") +
                std::to_string(kFeedFifoPriority) + ": " + std::strerror(fifo) + "; nice " +
                std::to_string(kFeedNice) + ": " + std::strerror(niceErr) +
                "); it runs at normal priority, so other programs may delay moves (run as root, or allow "
                "real-time scheduling: CAP_SYS_NICE or `ulimit -r " +
                std::to_string(kFeedFifoPriority) + "`)";
  return out;
}

ScopedThreadPriority::ScopedThreadPriority(FeedPriority priority) {
  sched_param param{};
  if (::pthread_getschedparam(::pthread_self(), &policy_, &param) != 0) policy_ = SCHED_OTHER;
  rtPriority_ = param.sched_priority;
  nice_ = currentNice();
  outcome_ = applyFeedPriority(priority);
}

ScopedThreadPriority::~ScopedThreadPriority() {
  if (outcome_.how == PriorityOutcome::How::kFifo) {
    sched_param param{};
    param.sched_priority = rtPriority_;
    ::pthread_setschedparam(::pthread_self(), policy_, &param);
  }
  if (currentNice() != nice_) ::setpriority(PRIO_PROCESS, static_cast<id_t>(threadId()), nice_);
}

}  // namespace runrec::hardware
