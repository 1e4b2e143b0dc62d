#include "tests/core/fault_vfs.h"

#include <sqlite3.h>

#include <cstring>
#include <mutex>

namespace relais::testing {
namespace {

StorageFaults g_faults;
sqlite3_vfs* g_real = nullptr;
sqlite3_vfs g_vfs;

// Our file: the real file's state follows this header in the same allocation.
struct FaultFile {
  sqlite3_file base;
  sqlite3_file* real;
};

sqlite3_file* real_of(sqlite3_file* f) {
  return reinterpret_cast<FaultFile*>(f)->real;
}

int f_close(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
}
int f_read(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
  return real_of(f)->pMethods->xRead(real_of(f), p, n, off);
}
int f_write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  if (g_faults.fail_write) {
    ++g_faults.writes_failed;
    return SQLITE_FULL;
  }
  return real_of(f)->pMethods->xWrite(real_of(f), p, n, off);
}
int f_truncate(sqlite3_file* f, sqlite3_int64 size) {
  return real_of(f)->pMethods->xTruncate(real_of(f), size);
}
int f_sync(sqlite3_file* f, int flags) {
  if (g_faults.fail_sync) {
    ++g_faults.syncs_failed;
    return SQLITE_IOERR_FSYNC;
  }
  return real_of(f)->pMethods->xSync(real_of(f), flags);
}
int f_size(sqlite3_file* f, sqlite3_int64* size) {
  return real_of(f)->pMethods->xFileSize(real_of(f), size);
}
int f_lock(sqlite3_file* f, int level) {
  return real_of(f)->pMethods->xLock(real_of(f), level);
}
int f_unlock(sqlite3_file* f, int level) {
  return real_of(f)->pMethods->xUnlock(real_of(f), level);
}
int f_check_lock(sqlite3_file* f, int* out) {
  return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}
int f_control(sqlite3_file* f, int op, void* arg) {
  return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}
int f_sector(sqlite3_file* f) {
  return real_of(f)->pMethods->xSectorSize(real_of(f));
}
int f_device(sqlite3_file* f) {
  return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}
int f_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** pp) {
  return real_of(f)->pMethods->xShmMap(real_of(f), region, size, extend, pp);
}
int f_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}
void f_shm_barrier(sqlite3_file* f) {
  real_of(f)->pMethods->xShmBarrier(real_of(f));
}
int f_shm_unmap(sqlite3_file* f, int del) {
  return real_of(f)->pMethods->xShmUnmap(real_of(f), del);
}
int f_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** pp) {
  return real_of(f)->pMethods->xFetch(real_of(f), off, n, pp);
}
int f_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return real_of(f)->pMethods->xUnfetch(real_of(f), off, p);
}

const sqlite3_io_methods kMethods = {
    3,          f_close,       f_read,       f_write,   f_truncate, f_sync,   f_size,
    f_lock,     f_unlock,      f_check_lock, f_control, f_sector,   f_device, f_shm_map,
    f_shm_lock, f_shm_barrier, f_shm_unmap,  f_fetch,   f_unfetch,
};

int v_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  auto* ff = reinterpret_cast<FaultFile*>(file);
  ff->real = reinterpret_cast<sqlite3_file*>(ff + 1);
  ff->base.pMethods = nullptr;
  int rc = g_real->xOpen(g_real, name, ff->real, flags, out_flags);
  if (rc == SQLITE_OK) ff->base.pMethods = &kMethods;
  return rc;
}
int v_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return g_real->xDelete(g_real, name, sync_dir);
}
int v_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_real->xAccess(g_real, name, flags, out);
}
int v_full_path(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_real->xFullPathname(g_real, name, n, out);
}
void* v_dl_open(sqlite3_vfs*, const char* name) {
  return g_real->xDlOpen(g_real, name);
}
void v_dl_error(sqlite3_vfs*, int n, char* msg) {
  g_real->xDlError(g_real, n, msg);
}
void (*v_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) {
  return g_real->xDlSym(g_real, h, sym);
}
void v_dl_close(sqlite3_vfs*, void* h) {
  g_real->xDlClose(g_real, h);
}
int v_randomness(sqlite3_vfs*, int n, char* out) {
  return g_real->xRandomness(g_real, n, out);
}
int v_sleep(sqlite3_vfs*, int us) {
  return g_real->xSleep(g_real, us);
}
int v_current_time(sqlite3_vfs*, double* out) {
  return g_real->xCurrentTime(g_real, out);
}
int v_last_error(sqlite3_vfs*, int n, char* out) {
  return g_real->xGetLastError ? g_real->xGetLastError(g_real, n, out) : 0;
}
int v_current_time64(sqlite3_vfs*, sqlite3_int64* out) {
  return g_real->xCurrentTimeInt64(g_real, out);
}

}  // namespace

StorageFaults& install_fault_vfs() {
  static std::once_flag once;
  std::call_once(once, [] {
    sqlite3_initialize();
    g_real = sqlite3_vfs_find(nullptr);
    std::memset(&g_vfs, 0, sizeof g_vfs);
    g_vfs.iVersion = 2;
    g_vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + g_real->szOsFile;
    g_vfs.mxPathname = g_real->mxPathname;
    g_vfs.zName = "relais-fault";
    g_vfs.xOpen = v_open;
    g_vfs.xDelete = v_delete;
    g_vfs.xAccess = v_access;
    g_vfs.xFullPathname = v_full_path;
    g_vfs.xDlOpen = v_dl_open;
    g_vfs.xDlError = v_dl_error;
    g_vfs.xDlSym = v_dl_sym;
    g_vfs.xDlClose = v_dl_close;
    g_vfs.xRandomness = v_randomness;
    g_vfs.xSleep = v_sleep;
    g_vfs.xCurrentTime = v_current_time;
    g_vfs.xGetLastError = v_last_error;
    g_vfs.xCurrentTimeInt64 = v_current_time64;
    sqlite3_vfs_register(&g_vfs, 1);
  });
  return g_faults;
}

}  // namespace relais::testing
