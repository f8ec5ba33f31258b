// libFuzzer target: the Smoothie driver's reply parsing (acknowledgements, error/ALARM
// recovery, M114.2 positions, M369/M371 instrument hex) and the virtual Smoothie's G-code
// parser. The input is a script of replies separated by '\x01': each line the driver writes
// makes the next reply readable, as a board would answer it.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "runrec/hardware/smoothie.hpp"
#include "runrec/hardware/virtual_smoothie.hpp"

namespace {
using namespace runrec::hardware;

class ScriptPort final : public SerialPort {
 public:
  explicit ScriptPort(std::string_view script) : script_(script) {}
  Status write(std::string_view) override {
    // The next reply becomes readable.
    auto end = script_.find('\x01');
    pending_ = script_.substr(0, end);
    script_ = end == std::string_view::npos ? std::string_view() : script_.substr(end + 1);
    drainedOnce_ = false;
    return {};
  }
  Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds) override {
    if (pending_.empty()) {
      // One empty read (a timeout), then the port is gone: no real waiting in the fuzzer.
      if (drainedOnce_) return fail(ErrorCode::kCommunication, "script ended");
      drainedOnce_ = true;
      return std::size_t{0};
    }
    std::size_t n = std::min(size, pending_.size());
    std::memcpy(buffer, pending_.data(), n);
    pending_.remove_prefix(n);
    return n;
  }
  void close() override {}
  std::string describe() const override { return "fuzz"; }

 private:
  std::string_view script_, pending_;
  bool drainedOnce_ = false;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  SmoothieDriverOptions options;
  options.ackTimeout = std::chrono::milliseconds(1);
  options.homeTimeout = std::chrono::milliseconds(1);
  options.retries = 1;
  SmoothieDriver driver(std::make_unique<ScriptPort>(input), options);
  AxisArray currents{0.1, 0.05, 0.05, 1.25, 1.25, 0.1};
  (void)driver.home("XYZA", currents);
  (void)driver.updatePosition();
  (void)driver.readInstrument(Mount::kLeft, true);
  (void)driver.readInstrument(Mount::kRight, false);
  AxisTargets target{};
  target[kAxisX] = 100.5;
  target[kAxisB] = 12.25;
  (void)driver.move(target, currents, 50.0);
  (void)driver.command("G28.6");
  (void)decodeInstrumentHex(input);

  // The same bytes as G-code into the virtual board.
  VirtualSmoothie board;
  std::string out;
  board.receive(input, out);
  board.receive("\r\nM114.2 M400\r\n", out);
  return 0;
}
