#pragma once
// set_thread_name: names the calling thread, so that `top -H`, `ps -L`, `perf report --sort
// comm` and /proc/PID/task/*/comm tell relais's threads apart ("http-0", "writer",
// "completion", "dlv-genesis-2", …) — the per-thread CPU of the benchmarks reads from there.
// Linux keeps at most 15 characters: a longer name is cut to its first 15 (never refused).
// Thread-safety: names only the calling thread; call it first thing in the thread's function.

#include <pthread.h>

#include <string>
#include <string_view>

namespace relais {

inline void set_thread_name(std::string_view name) {
  constexpr size_t kMax = 15;  // the kernel's TASK_COMM_LEN (16) less its NUL
  std::string cut(name.substr(0, kMax));
  pthread_setname_np(pthread_self(), cut.c_str());
}

// "PREFIX-N" (the N-th thread of a pool), cut like any name.
inline void set_thread_name(std::string_view prefix, int n) {
  std::string name(prefix);
  name += '-';
  name += std::to_string(n);
  set_thread_name(name);
}

}  // namespace relais
