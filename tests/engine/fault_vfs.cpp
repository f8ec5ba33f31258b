// The storage fault shim (fault_vfs.hpp): an sqlite3_vfs whose files wrap the default VFS's
// files and forward every call, except the writes and syncs it is armed to fail.
#include "fault_vfs.hpp"

#include <sqlite3.h>

#include <cstring>
#include <mutex>
#include <new>

namespace runrec::test {
namespace {

struct Armed {
  std::mutex mutex;
  bool active = false;
  std::string path;
  StorageFault fault;
  std::function<void()> onInject;
  long writes = 0, syncs = 0, injected = 0;
};
Armed& armed() {
  static Armed a;
  return a;
}

sqlite3_vfs* inner = nullptr;
sqlite3_vfs shim;

struct File {
  sqlite3_file base;  // our methods
  bool target;        // a main database or WAL file under the armed path (at open time)
  std::string name;
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};
File* F(sqlite3_file* f) { return reinterpret_cast<File*>(f); }

// Counts a write or sync of an armed file and says whether to fail it.
bool shouldFail(File* f, bool sync) {
  auto& a = armed();
  std::function<void()> notify;
  {
    std::lock_guard lk(a.mutex);
    if (!a.active || f->name.compare(0, a.path.size(), a.path) != 0) return false;
    bool isSyncFault = a.fault.kind == StorageFault::Kind::kSyncError;
    long n = sync ? ++a.syncs : ++a.writes;
    if (sync != isSyncFault) return false;
    if (n < a.fault.nth || (a.fault.count >= 0 && n >= a.fault.nth + a.fault.count)) return false;
    a.injected++;
    notify = a.onInject;
  }
  if (notify) notify();
  return true;
}

int xClose(sqlite3_file* f) {
  int rc = F(f)->real()->pMethods ? F(f)->real()->pMethods->xClose(F(f)->real()) : SQLITE_OK;
  F(f)->name.~basic_string();
  return rc;
}
int xRead(sqlite3_file* f, void* p, int n, sqlite3_int64 o) { return F(f)->real()->pMethods->xRead(F(f)->real(), p, n, o); }
int xWrite(sqlite3_file* f, const void* p, int n, sqlite3_int64 o) {
  if (F(f)->target && shouldFail(F(f), false))
    return armed().fault.kind == StorageFault::Kind::kDiskFull ? SQLITE_FULL : SQLITE_IOERR_WRITE;
  return F(f)->real()->pMethods->xWrite(F(f)->real(), p, n, o);
}
int xTruncate(sqlite3_file* f, sqlite3_int64 s) { return F(f)->real()->pMethods->xTruncate(F(f)->real(), s); }
int xSync(sqlite3_file* f, int flags) {
  if (F(f)->target && shouldFail(F(f), true)) return SQLITE_IOERR_FSYNC;
  return F(f)->real()->pMethods->xSync(F(f)->real(), flags);
}
int xFileSize(sqlite3_file* f, sqlite3_int64* s) { return F(f)->real()->pMethods->xFileSize(F(f)->real(), s); }
int xLock(sqlite3_file* f, int l) { return F(f)->real()->pMethods->xLock(F(f)->real(), l); }
int xUnlock(sqlite3_file* f, int l) { return F(f)->real()->pMethods->xUnlock(F(f)->real(), l); }
int xCheckReservedLock(sqlite3_file* f, int* r) { return F(f)->real()->pMethods->xCheckReservedLock(F(f)->real(), r); }
int xFileControl(sqlite3_file* f, int op, void* a) { return F(f)->real()->pMethods->xFileControl(F(f)->real(), op, a); }
int xSectorSize(sqlite3_file* f) { return F(f)->real()->pMethods->xSectorSize(F(f)->real()); }
int xDeviceCharacteristics(sqlite3_file* f) { return F(f)->real()->pMethods->xDeviceCharacteristics(F(f)->real()); }
int xShmMap(sqlite3_file* f, int i, int sz, int e, void volatile** p) { return F(f)->real()->pMethods->xShmMap(F(f)->real(), i, sz, e, p); }
int xShmLock(sqlite3_file* f, int o, int n, int fl) { return F(f)->real()->pMethods->xShmLock(F(f)->real(), o, n, fl); }
void xShmBarrier(sqlite3_file* f) { F(f)->real()->pMethods->xShmBarrier(F(f)->real()); }
int xShmUnmap(sqlite3_file* f, int d) { return F(f)->real()->pMethods->xShmUnmap(F(f)->real(), d); }
int xFetch(sqlite3_file* f, sqlite3_int64 o, int n, void** p) { return F(f)->real()->pMethods->xFetch(F(f)->real(), o, n, p); }
int xUnfetch(sqlite3_file* f, sqlite3_int64 o, void* p) { return F(f)->real()->pMethods->xUnfetch(F(f)->real(), o, p); }

const sqlite3_io_methods kMethods = {3, xClose, xRead, xWrite, xTruncate, xSync, xFileSize, xLock, xUnlock,
                                     xCheckReservedLock, xFileControl, xSectorSize, xDeviceCharacteristics,
                                     xShmMap, xShmLock, xShmBarrier, xShmUnmap, xFetch, xUnfetch};

int xOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* outFlags) {
  File* file = F(f);
  file->base.pMethods = nullptr;
  new (&file->name) std::string(name ? name : "");
  file->target = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
  std::memset(file->real(), 0, static_cast<std::size_t>(inner->szOsFile));
  int rc = inner->xOpen(inner, name, file->real(), flags, outFlags);
  // SQLite calls xClose even when xOpen fails if pMethods is set; set it always so the
  // name is destroyed, and let xClose skip the inner close when it never opened.
  file->base.pMethods = &kMethods;
  return rc;
}

}  // namespace

const char* toString(StorageFault::Kind kind) {
  switch (kind) {
    case StorageFault::Kind::kWriteError: return "write error";
    case StorageFault::Kind::kDiskFull: return "disk full";
    case StorageFault::Kind::kSyncError: return "sync error";
  }
  return "?";
}

FaultVfs& FaultVfs::install() {
  static FaultVfs instance;
  static std::once_flag once;
  std::call_once(once, [] {
    inner = sqlite3_vfs_find(nullptr);
    shim = *inner;
    shim.pNext = nullptr;
    shim.zName = "runrec-fault";
    shim.szOsFile = static_cast<int>(sizeof(File)) + inner->szOsFile;
    shim.xOpen = xOpen;
    shim.pAppData = nullptr;
    sqlite3_vfs_register(&shim, 1);
  });
  return instance;
}

void FaultVfs::arm(const std::string& dbPath, StorageFault fault, std::function<void()> onInject) {
  auto& a = armed();
  std::lock_guard lk(a.mutex);
  a.active = true;
  a.path = dbPath;
  a.fault = fault;
  a.onInject = std::move(onInject);
  a.writes = a.syncs = a.injected = 0;
}

void FaultVfs::disarm() {
  auto& a = armed();
  std::lock_guard lk(a.mutex);
  a.active = false;
  a.onInject = nullptr;
}

long FaultVfs::writes() const {
  std::lock_guard lk(armed().mutex);
  return armed().writes;
}
long FaultVfs::syncs() const {
  std::lock_guard lk(armed().mutex);
  return armed().syncs;
}
long FaultVfs::injected() const {
  std::lock_guard lk(armed().mutex);
  return armed().injected;
}

}  // namespace runrec::test
