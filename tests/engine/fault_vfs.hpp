// Storage fault injection for tests: an SQLite VFS shim over the default ("unix") VFS that
// can fail the Nth write (I/O error or disk full) or the Nth sync of one database's files
// (the main file and its WAL), for a number of calls, then behave again.
//
// install() registers it as the process's default VFS, so every EventLog the test process
// opens goes through it; files not matching the armed path are passed through untouched.
// Thread-safe: the engine's writer thread does the I/O while the test thread arms.
#pragma once

#include <functional>
#include <string>

namespace runrec::test {

struct StorageFault {
  enum class Kind { kWriteError, kDiskFull, kSyncError };
  Kind kind = Kind::kWriteError;
  long nth = 1;     // the Nth write (or sync) of the armed files after arm(), from 1
  long count = 1;   // how many calls fail from there on (-1: every one until disarm())
};
const char* toString(StorageFault::Kind kind);

class FaultVfs {
 public:
  // Registers the shim as the default VFS (once per process).
  static FaultVfs& install();
  // Faults the files whose path starts with `dbPath` (the database and its -wal/-shm).
  // `onInject` runs (on the I/O thread) each time a call is made to fail.
  void arm(const std::string& dbPath, StorageFault fault, std::function<void()> onInject = {});
  void disarm();
  long writes() const;    // writes to the armed files since arm()
  long syncs() const;     // syncs of the armed files since arm()
  long injected() const;  // calls made to fail since arm()
};

}  // namespace runrec::test
