// VirtualSmoothie: runrec's own emulation of the OT-2 Smoothieware motion board. It parses
// the G-code the driver sends (one line at a time, several codes per line), keeps axis
// positions, homed flags, currents, speeds and the attached instruments, answers M114.2,
// G28.6 and M369/M371, and acknowledges each line with `ok\r\nok\r\n` as the board does.
//
// Options: motion time (distance, feed, per-axis max speed and acceleration, scaled by
// timeScale: 1 real time, 0 instant) and fault injection (error or ALARM on the Nth move,
// drop a reply, answer garbage, go silent). Connect it in-process (makeLoopbackPort) or on
// a pseudo-terminal (PtySmoothie). Not thread-safe: one connection drives it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runrec/hardware/error.hpp"

namespace runrec::hardware {

// One fault, triggered by the Nth motion line (a line with a G0 that moves or a G28.2),
// counted from 1 since the board started.
struct SmoothieFault {
  enum class Kind {
    kError,      // answers `error:...` (the move is not made)
    kAlarm,      // answers `ALARM: Hard limit +<axis>` and locks until M999
    kDropReply,  // makes the move but sends no reply for that line
    kGarbage,    // makes the move but answers bytes that are not G-code replies
    kSilent,     // from that line on, never answers again
    kDisconnect, // makes the move, sends half its reply, then the port goes away (USB unplugged)
  };
  Kind kind = Kind::kError;
  long nthMove = 1;
};

// Parses "error@3", "alarm@5", "drop@2", "garbage@4", "silent@7", "disconnect@9".
Result<SmoothieFault> parseSmoothieFault(std::string_view text);

struct VirtualSmoothieOptions {
  double timeScale = 0;  // 1: moves take real time; 0: instant
  // Instruments the board reports through M371 (model) and M369 (id); empty: none.
  std::string leftModel, rightModel;
  std::string leftId, rightId;
  std::vector<SmoothieFault> faults;
};

class VirtualSmoothie {
 public:
  explicit VirtualSmoothie(VirtualSmoothieOptions options = {});

  // Feeds bytes from the host. Every complete line is executed; replies are appended to
  // `out`. Sleeps for the motion time when timeScale > 0.
  void receive(std::string_view bytes, std::string& out);

  // Axis order A B C X Y Z (alphabetical, as the board prints them).
  enum Axis { kA, kB, kC, kX, kY, kZ, kAxes };
  const std::array<double, kAxes>& position() const { return pos_; }
  bool homed(Axis axis) const { return homed_[axis]; }
  long lines() const { return lines_; }
  long moves() const { return moves_; }
  double simulatedSeconds() const { return simulatedSeconds_; }
  bool silent() const { return silent_; }
  bool disconnected() const { return disconnected_; }  // a disconnect fault fired

 private:
  // One code of a line ("G0"), its argument text ("X1 Y2", pointing into the line) and its
  // arguments, args_[firstArg] on (argCount of them).
  struct Code {
    std::string_view name, args;
    std::uint32_t firstArg = 0, argCount = 0;
  };
  // One argument: "X1.5" (letter and value), "X" (bare), or malformed (not valid).
  struct Arg {
    char letter = 0;
    bool bare = false, valid = true;
    double value = 0;
  };
  void splitCodes(std::string_view line);  // into codes_ and args_
  // Calls f(letter, value) for each of the code's arguments (no value for a bare letter);
  // false at the first malformed one or the first f that returns false.
  template <class F>
  bool forEachArg(const Code& code, F&& f) const;
  void executeLine(std::string_view line, std::string& out);
  bool applyMove(const Code& code, std::string& err);
  double moveTime(const std::array<double, kAxes>& from, const std::array<double, kAxes>& to) const;
  const SmoothieFault* faultFor(long move) const;

  VirtualSmoothieOptions options_;
  std::string partial_;
  // The line being executed, split (reused: no allocation per line).
  std::vector<Code> codes_;
  std::vector<Arg> args_;
  std::array<double, kAxes> pos_{};
  std::array<bool, kAxes> homed_{};
  std::array<double, kAxes> maxSpeed_{125, 40, 40, 600, 400, 125};
  std::array<double, kAxes> accel_{1500, 200, 200, 3000, 2000, 1500};
  std::array<double, kAxes> steps_{400, 768, 768, 80, 80, 400};
  std::array<double, kAxes> current_{};
  double feed_ = 24000;  // mm/min
  bool relative_ = false;
  bool alarm_ = false;
  bool silent_ = false;
  bool disconnected_ = false;
  long lines_ = 0, moves_ = 0;
  double simulatedSeconds_ = 0;
};

// The board on a pseudo-terminal: open() creates a pty pair (raw, 115200 8N1), path() is
// the device for `--robot serial:PATH`; serve() answers until `stop` is set (it polls
// every 100 ms). Owns its file descriptors; serve() runs on one thread.
class PtySmoothie {
 public:
  static Result<std::unique_ptr<PtySmoothie>> open(VirtualSmoothie& board);
  ~PtySmoothie();
  const std::string& path() const { return path_; }
  Status serve(const std::atomic<bool>& stop);

 private:
  PtySmoothie(VirtualSmoothie& board, int master, int slave, std::string path)
      : board_(board), master_(master), slave_(slave), path_(std::move(path)) {}
  VirtualSmoothie& board_;
  int master_ = -1, slave_ = -1;
  std::string path_;
};

}  // namespace runrec::hardware
