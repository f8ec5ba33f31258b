// Serial ports: libserialport on a device, the in-process loopback to a VirtualSmoothie,
// and the recording wrapper.
#include "runrec/hardware/serial_port.hpp"

#include <fcntl.h>
#include <libserialport.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstring>
#include <thread>

#include "runrec/hardware/virtual_smoothie.hpp"

namespace runrec::hardware {
namespace {

std::string spError(const char* what, sp_return code) {
  std::string msg = what;
  if (code == SP_ERR_FAIL) {
    char* text = sp_last_error_message();
    msg += ": ";
    msg += text ? text : "failed";
    sp_free_error_message(text);
  } else {
    msg += code == SP_ERR_ARG ? ": invalid argument" : code == SP_ERR_MEM ? ": out of memory" : ": not supported";
  }
  return msg;
}

class LibSerialPort final : public SerialPort {
 public:
  LibSerialPort(sp_port* port, std::string device) : port_(port), device_(std::move(device)) {}
  ~LibSerialPort() override { close(); }

  Status write(std::string_view bytes) override {
    if (!port_) return fail(ErrorCode::kCommunication, device_ + ": port is closed");
    sp_return n = sp_blocking_write(port_, bytes.data(), bytes.size(), 5000);
    if (n < 0) return fail(ErrorCode::kCommunication, spError((device_ + ": write").c_str(), n));
    if (static_cast<std::size_t>(n) != bytes.size())
      return fail(ErrorCode::kCommunication, device_ + ": write timed out after " + std::to_string(n) + " of " +
                                                 std::to_string(bytes.size()) + " bytes");
    return {};
  }

  Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) override {
    if (!port_) return fail(ErrorCode::kCommunication, device_ + ": port is closed");
    sp_return n;
    if (timeout.count() <= 0) {
      n = sp_nonblocking_read(port_, buffer, size);
    } else {
      n = sp_blocking_read_next(port_, buffer, size, static_cast<unsigned>(timeout.count()));
    }
    if (n < 0) return fail(ErrorCode::kCommunication, spError((device_ + ": read").c_str(), n));
    return static_cast<std::size_t>(n);
  }

  void close() override {
    if (!port_) return;
    sp_close(port_);
    sp_free_port(port_);
    port_ = nullptr;
  }

  std::string describe() const override { return device_; }

 private:
  sp_port* port_;
  std::string device_;
};

// Pseudo-terminals: libserialport looks every device up in sysfs, where ptys have no
// entry, and refuses them. This port gives them the same settings through termios.
class TermiosPort final : public SerialPort {
 public:
  TermiosPort(int fd, std::string device) : fd_(fd), device_(std::move(device)) {}
  ~TermiosPort() override { close(); }
  Status write(std::string_view bytes) override {
    if (fd_ < 0) return fail(ErrorCode::kCommunication, device_ + ": port is closed");
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          pollfd p{fd_, POLLOUT, 0};
          if (::poll(&p, 1, 5000) <= 0) return fail(ErrorCode::kCommunication, device_ + ": write timed out");
          continue;
        }
        return fail(ErrorCode::kCommunication, device_ + ": write: " + std::strerror(errno));
      }
      done += static_cast<std::size_t>(n);
    }
    return {};
  }
  Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) override {
    if (fd_ < 0) return fail(ErrorCode::kCommunication, device_ + ": port is closed");
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::max<long long>(0, timeout.count())));
    if (r < 0) {
      if (errno == EINTR) return std::size_t{0};
      return fail(ErrorCode::kCommunication, device_ + ": poll: " + std::strerror(errno));
    }
    if (r == 0) return std::size_t{0};
    if ((p.revents & (POLLHUP | POLLERR | POLLNVAL)) && !(p.revents & POLLIN))
      return fail(ErrorCode::kCommunication, device_ + ": the other end hung up");
    ssize_t n = ::read(fd_, buffer, size);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) return std::size_t{0};
      return fail(ErrorCode::kCommunication, device_ + ": read: " + std::strerror(errno));
    }
    if (n == 0) return fail(ErrorCode::kCommunication, device_ + ": the other end hung up");
    return static_cast<std::size_t>(n);
  }
  void close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::string describe() const override { return device_; }

 private:
  int fd_;
  std::string device_;
};

Result<std::unique_ptr<SerialPort>> openTermios(const std::string& device) {
  int fd = ::open(device.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return fail(ErrorCode::kCommunication, device + ": cannot open: " + std::strerror(errno), {{"device", device}});
  termios tio{};
  if (::tcgetattr(fd, &tio) != 0) {
    std::string msg = device + ": not a terminal: " + std::strerror(errno);
    ::close(fd);
    return fail(ErrorCode::kCommunication, msg, {{"device", device}});
  }
  ::cfmakeraw(&tio);
  tio.c_cflag &= ~static_cast<tcflag_t>(PARENB | CSTOPB | CSIZE | CRTSCTS);
  tio.c_cflag |= CS8 | CLOCAL | CREAD;
  ::cfsetispeed(&tio, B115200);
  ::cfsetospeed(&tio, B115200);
  ::tcsetattr(fd, TCSANOW, &tio);
  return std::unique_ptr<SerialPort>(std::make_unique<TermiosPort>(fd, device));
}

class LoopbackPort final : public SerialPort {
 public:
  explicit LoopbackPort(VirtualSmoothie& board) : board_(board) {}
  Status write(std::string_view bytes) override {
    if (closed_) return fail(ErrorCode::kCommunication, "loopback: port is closed");
    if (board_.disconnected()) return fail(ErrorCode::kCommunication, "virtual Smoothie: the port went away (disconnected)");
    board_.receive(bytes, pending_);
    return {};
  }
  Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) override {
    if (closed_) return fail(ErrorCode::kCommunication, "loopback: port is closed");
    // The board answers synchronously: nothing pending means nothing will come. Wait out
    // the timeout as a real port would (no busy loop for the caller).
    if (offset_ == pending_.size()) {
      if (board_.disconnected())
        return fail(ErrorCode::kCommunication, "virtual Smoothie: the port went away (disconnected)");
      if (timeout.count() > 0) std::this_thread::sleep_for(timeout);
      return std::size_t{0};
    }
    std::size_t n = std::min(size, pending_.size() - offset_);
    std::memcpy(buffer, pending_.data() + offset_, n);
    offset_ += n;
    if (offset_ == pending_.size()) {
      pending_.clear();
      offset_ = 0;
    }
    return n;
  }
  void close() override { closed_ = true; }
  std::string describe() const override { return "virtual"; }

 private:
  VirtualSmoothie& board_;
  std::string pending_;
  std::size_t offset_ = 0;
  bool closed_ = false;
};

class RecordingPort final : public SerialPort {
 public:
  RecordingPort(std::unique_ptr<SerialPort> inner, std::function<void(std::string_view)> onLine)
      : inner_(std::move(inner)), onLine_(std::move(onLine)) {}
  Status write(std::string_view bytes) override {
    std::string_view rest = bytes;
    while (!rest.empty()) {
      auto nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
      if (!line.empty() && onLine_) onLine_(line);
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
    return inner_->write(bytes);
  }
  Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) override {
    return inner_->read(buffer, size, timeout);
  }
  void close() override { inner_->close(); }
  std::string describe() const override { return inner_->describe(); }

 private:
  std::unique_ptr<SerialPort> inner_;
  std::function<void(std::string_view)> onLine_;
};

}  // namespace

Result<std::unique_ptr<SerialPort>> openSerialPort(const std::string& device) {
  sp_port* port = nullptr;
  if (sp_return r = sp_get_port_by_name(device.c_str(), &port); r != SP_OK) {
    if (device.rfind("/dev/pts/", 0) == 0) return openTermios(device);
    return fail(ErrorCode::kCommunication, spError((device + ": no such serial port").c_str(), r),
                {{"device", device}});
  }
  auto cleanup = [&](sp_return r, const char* what) {
    std::string msg = spError((device + ": " + what).c_str(), r);
    sp_close(port);
    sp_free_port(port);
    return fail(ErrorCode::kCommunication, msg, {{"device", device}});
  };
  if (sp_return r = sp_open(port, SP_MODE_READ_WRITE); r != SP_OK) {
    std::string msg = spError((device + ": cannot open").c_str(), r);
    sp_free_port(port);
    return fail(ErrorCode::kCommunication, msg, {{"device", device}});
  }
  if (sp_return r = sp_set_baudrate(port, 115200); r != SP_OK) return cleanup(r, "set 115200 baud");
  if (sp_return r = sp_set_bits(port, 8); r != SP_OK) return cleanup(r, "set 8 data bits");
  if (sp_return r = sp_set_parity(port, SP_PARITY_NONE); r != SP_OK) return cleanup(r, "set no parity");
  if (sp_return r = sp_set_stopbits(port, 1); r != SP_OK) return cleanup(r, "set 1 stop bit");
  if (sp_return r = sp_set_flowcontrol(port, SP_FLOWCONTROL_NONE); r != SP_OK) return cleanup(r, "set no flow control");
  return std::unique_ptr<SerialPort>(std::make_unique<LibSerialPort>(port, device));
}

std::unique_ptr<SerialPort> makeLoopbackPort(VirtualSmoothie& board) { return std::make_unique<LoopbackPort>(board); }

std::unique_ptr<SerialPort> makeRecordingPort(std::unique_ptr<SerialPort> inner,
                                              std::function<void(std::string_view)> onLine) {
  return std::make_unique<RecordingPort>(std::move(inner), std::move(onLine));
}

}  // namespace runrec::hardware
