// Internal to the bus: removes the Unix socket file of an ipc:// endpoint this process
// bound, when the binding object goes away (libzmq leaves them in /tmp).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace runrec::bus::detail {

// Remembers the socket file bound for `endpoint` (nothing for inproc:// or tcp://) by its
// device and inode; the destructor unlinks the path only if it is still that same file, so
// an engine started since on the same path (which replaced the file) keeps its socket.
class IpcFile {
 public:
  IpcFile() = default;
  explicit IpcFile(const std::string& endpoint) { remember(endpoint); }
  IpcFile(const IpcFile&) = delete;
  IpcFile& operator=(const IpcFile&) = delete;
  ~IpcFile() {
    struct stat st {};
    if (!path_.empty() && ::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ &&
        st.st_ino == ino_)
      ::unlink(path_.c_str());
  }
  // Call right after a successful bind().
  void remember(const std::string& endpoint) {
    if (endpoint.rfind("ipc://", 0) != 0 || endpoint.size() <= 6 || endpoint[6] == '@' || endpoint == "ipc://*")
      return;
    struct stat st {};
    std::string p = endpoint.substr(6);
    if (::lstat(p.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
    path_ = p;
    dev_ = st.st_dev;
    ino_ = st.st_ino;
  }

 private:
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace runrec::bus::detail
