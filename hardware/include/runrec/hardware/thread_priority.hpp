// The scheduling of the thread that feeds the motion board (docs/hardware.md, "Feeding the
// board in time"). With motion in real time the board waits, idle, from the end of one move
// until the next line arrives; whatever else runs on the machine (subscribers, history
// readers, `runrec show`, builds) must not stand between the board's acknowledgement and the
// next line. The feeding thread therefore runs, when permitted, under SCHED_FIFO at a
// moderate priority (kFeedFifoPriority: above every normal thread, below the kernel's
// threaded interrupt handlers at 50, which deliver the USB-serial acknowledgements); when
// SCHED_FIFO is refused, at a negative nice (kFeedNice) on its own thread id; when both are
// refused, unchanged, with one warning for the caller to print.
//
// Linux threads inherit their creator's scheduling: ScopedThreadPriority raises the calling
// thread for the lifetime of the guard, so a thread started inside it (the engine's writer
// thread, Engine::start()) runs raised, and the caller is restored afterwards.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace runrec::hardware {

enum class FeedPriority {
  kAuto,      // realtime when the robot moves in real time (a serial board), else normal
  kRealtime,  // SCHED_FIFO kFeedFifoPriority, else nice kFeedNice, else unchanged + warning
  kNormal,    // leave the thread as it is
};
std::optional<FeedPriority> parseFeedPriority(std::string_view text);  // "auto", "realtime", "normal"
const char* toString(FeedPriority priority);

// kAuto resolved: kRealtime when `realTimeMotion`, else kNormal. Instant (simulated) motion
// gains nothing from a raise, and a SCHED_FIFO thread that never waits for the board would
// only take a core from everything else (the kernel's RT throttling caps it at 95 %).
FeedPriority resolveFeedPriority(FeedPriority priority, bool realTimeMotion);

// Whether the robot behind a `--robot` spec moves in real time: "serial:..." (a board, or
// `runrec smoothie --pty` with its own time scale). "sim" and "sim-basic" are instant.
bool robotMovesInRealTime(std::string_view robotSpec);

constexpr int kFeedFifoPriority = 10;  // 1..99; threaded IRQs run at 50
constexpr int kFeedNice = -10;

struct PriorityOutcome {
  enum class How { kUnchanged, kFifo, kNice, kDenied } how = How::kUnchanged;
  std::string description;  // "SCHED_FIFO 10", "nice -10", "normal"
  std::string warning;      // non-empty when a raise was asked for and refused
};

// Applies `priority` (kAuto is treated as kNormal: resolve it first) to the calling thread.
PriorityOutcome applyFeedPriority(FeedPriority priority);

// Raises the calling thread while it lives (see the top of this file) and restores its
// policy, priority and nice on destruction.
class ScopedThreadPriority {
 public:
  explicit ScopedThreadPriority(FeedPriority priority);
  ~ScopedThreadPriority();
  ScopedThreadPriority(const ScopedThreadPriority&) = delete;
  ScopedThreadPriority& operator=(const ScopedThreadPriority&) = delete;
  const PriorityOutcome& outcome() const { return outcome_; }

 private:
  PriorityOutcome outcome_;
  int policy_ = 0;
  int rtPriority_ = 0;
  int nice_ = 0;
};

}  // namespace runrec::hardware
