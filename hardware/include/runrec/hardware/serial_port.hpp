// The byte pipe under the Smoothie driver: a tiny interface (write, read with a timeout,
// close) with two implementations: libserialport on a real device (or a pty), and an
// in-process loopback to a VirtualSmoothie that makes no system calls.
//
// A port is owned by one driver and used from one thread; not thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "runrec/hardware/error.hpp"

namespace runrec::hardware {

class VirtualSmoothie;

class SerialPort {
 public:
  virtual ~SerialPort() = default;
  // Writes every byte or fails (kCommunication: the port vanished or an I/O error).
  virtual Status write(std::string_view bytes) = 0;
  // Waits up to `timeout` for at least one byte and returns how many were read into
  // `buffer` (0: nothing arrived in time). kCommunication if the port is gone.
  virtual Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) = 0;
  virtual void close() = 0;
  virtual std::string describe() const = 0;
};

// Opens `device` (e.g. /dev/ttyACM0 or /dev/pts/3) with libserialport at 115200 8N1, no
// flow control. kCommunication with libserialport's message when it cannot.
Result<std::unique_ptr<SerialPort>> openSerialPort(const std::string& device);

// A port whose other end is `board`, in this process: write() hands the bytes to the
// board, which answers into a buffer that read() drains. `board` must outlive the port.
std::unique_ptr<SerialPort> makeLoopbackPort(VirtualSmoothie& board);

// Wraps a port and reports every line written to it (without its line terminator) to
// `onLine` before passing it on. Used by `runrec gcode` and the parity test.
std::unique_ptr<SerialPort> makeRecordingPort(std::unique_ptr<SerialPort> inner,
                                              std::function<void(std::string_view line)> onLine);

}  // namespace runrec::hardware
