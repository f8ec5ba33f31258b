// The feeding thread's priority: parsing, the auto rule, SCHED_FIFO when permitted, the nice
// fallback and the warning when nothing is permitted (in a child dropped to an unprivileged
// user), and the scoped raise that a thread started inside it inherits.
#include "doctest_hardware.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "runrec/hardware/thread_priority.hpp"

using namespace runrec::hardware;

namespace {

int policyOfThisThread() {
  int policy = -1;
  sched_param p{};
  pthread_getschedparam(pthread_self(), &policy, &p);
  return policy;
}

int niceOfThisThread() { return getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())); }

// Runs `body` in a forked child that gave up every privilege to raise a thread (an ordinary
// user, RLIMIT_RTPRIO 0, RLIMIT_NICE `niceLimit`); returns the child's exit code, or -1 when
// this process cannot build that child (not root, or a hard limit below `niceLimit`).
template <class F>
int inUnprivilegedChild(rlim_t niceLimit, F&& body) {
  if (geteuid() != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    rlimit rt{0, 0}, nice{niceLimit, niceLimit};
    if (setrlimit(RLIMIT_RTPRIO, &rt) != 0 || setrlimit(RLIMIT_NICE, &nice) != 0) _exit(90);
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(91);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 99;
  if (rc == 90 || rc == 91) {
    MESSAGE("cannot drop to an unprivileged user with RLIMIT_NICE ", niceLimit, " here; case skipped");
    return -1;
  }
  return rc;
}

}  // namespace

TEST_CASE("FeedPriorityParsesAndResolvesAuto") {
  CHECK(parseFeedPriority("auto") == FeedPriority::kAuto);
  CHECK(parseFeedPriority("realtime") == FeedPriority::kRealtime);
  CHECK(parseFeedPriority("normal") == FeedPriority::kNormal);
  CHECK_FALSE(parseFeedPriority("high"));
  CHECK(std::string(toString(FeedPriority::kRealtime)) == "realtime");
  CHECK(resolveFeedPriority(FeedPriority::kAuto, true) == FeedPriority::kRealtime);
  CHECK(resolveFeedPriority(FeedPriority::kAuto, false) == FeedPriority::kNormal);
  CHECK(resolveFeedPriority(FeedPriority::kNormal, true) == FeedPriority::kNormal);
  CHECK(resolveFeedPriority(FeedPriority::kRealtime, false) == FeedPriority::kRealtime);
  CHECK(robotMovesInRealTime("serial:/dev/ttyACM0"));
  CHECK_FALSE(robotMovesInRealTime("sim"));
  CHECK_FALSE(robotMovesInRealTime("sim-basic"));
}

TEST_CASE("NormalLeavesTheThreadAlone") {
  std::thread t([] {
    int before = policyOfThisThread();
    auto o = applyFeedPriority(FeedPriority::kNormal);
    CHECK(o.how == PriorityOutcome::How::kUnchanged);
    CHECK(o.warning.empty());
    CHECK(policyOfThisThread() == before);
  });
  t.join();
}

TEST_CASE("RealtimeIsFifoWhenPermittedAndOtherwiseSaysWhy") {
  std::thread t([] {
    auto o = applyFeedPriority(FeedPriority::kRealtime);
    switch (o.how) {
      case PriorityOutcome::How::kFifo:
        CHECK(policyOfThisThread() == SCHED_FIFO);
        CHECK(o.description == "SCHED_FIFO " + std::to_string(kFeedFifoPriority));
        CHECK(o.warning.empty());
        break;
      case PriorityOutcome::How::kNice:
        CHECK(niceOfThisThread() <= kFeedNice);
        CHECK(o.warning.empty());
        break;
      case PriorityOutcome::How::kDenied:
        CHECK(o.warning.find("cannot raise") != std::string::npos);
        break;
      case PriorityOutcome::How::kUnchanged: FAIL("realtime left the thread unchanged without a warning");
    }
    if (geteuid() == 0) CHECK(o.how == PriorityOutcome::How::kFifo);  // root may always
  });
  t.join();
}

TEST_CASE("WithoutRealtimeRightsTheNiceFallbackApplies") {
  // RLIMIT_NICE 30 allows nice down to 20 - 30 = -10; SCHED_FIFO stays refused.
  int rc = inUnprivilegedChild(30, [] {
    auto o = applyFeedPriority(FeedPriority::kRealtime);
    if (o.how != PriorityOutcome::How::kNice) return 1;
    if (niceOfThisThread() != kFeedNice) return 2;
    if (policyOfThisThread() != SCHED_OTHER) return 3;
    return o.warning.empty() ? 0 : 4;
  });
  if (rc != -1) CHECK(rc == 0);
}

TEST_CASE("WithoutRealtimeRightsAnAlreadyFavouredThreadKeepsItsNice") {
  int rc = -1;
  if (geteuid() == 0) {
    pid_t pid = fork();
    if (pid == 0) {
      if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), -15) != 0) _exit(90);
      rlimit rt{0, 0};
      if (setrlimit(RLIMIT_RTPRIO, &rt) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(91);
      auto o = applyFeedPriority(FeedPriority::kRealtime);
      if (o.how != PriorityOutcome::How::kNice || !o.warning.empty()) _exit(1);
      if (niceOfThisThread() != -15 || policyOfThisThread() != SCHED_OTHER) _exit(2);
      _exit(o.description == "nice -15" ? 0 : 3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 99;
  }
  if (rc != -1) CHECK(rc == 0);
}

TEST_CASE("WithNoRightsAtAllRealtimeWarnsOnceAndChangesNothing") {
  int rc = inUnprivilegedChild(0, [] {
    int niceBefore = niceOfThisThread();
    auto o = applyFeedPriority(FeedPriority::kRealtime);
    if (o.how != PriorityOutcome::How::kDenied) return 1;
    if (o.warning.find("SCHED_FIFO") == std::string::npos || o.warning.find("nice") == std::string::npos) return 2;
    if (niceOfThisThread() != niceBefore || policyOfThisThread() != SCHED_OTHER) return 3;
    return 0;
  });
  if (rc != -1) CHECK(rc == 0);
}

TEST_CASE("AThreadStartedUnderTheScopedRaiseInheritsItAndTheCallerIsRestored") {
  std::thread outer([] {
    int policyBefore = policyOfThisThread();
    int niceBefore = niceOfThisThread();
    int childPolicy = -1, childNice = 0;
    PriorityOutcome outcome;
    {
      ScopedThreadPriority raise(FeedPriority::kRealtime);
      outcome = raise.outcome();
      std::thread inner([&] {
        childPolicy = policyOfThisThread();
        childNice = niceOfThisThread();
      });
      inner.join();
    }
    if (outcome.how == PriorityOutcome::How::kFifo) CHECK(childPolicy == SCHED_FIFO);
    if (outcome.how == PriorityOutcome::How::kNice) CHECK(childNice <= kFeedNice);
    CHECK(policyOfThisThread() == policyBefore);
    CHECK(niceOfThisThread() == niceBefore);
  });
  outer.join();
}
