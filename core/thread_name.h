#pragma once
// The calling thread's identity and CPU priority, as the operating system shows them.
//
// set_thread_name: names the calling thread, so that `top -H`, `ps -L`, `perf report --sort
// comm` and /proc/PID/task/*/comm tell relais's threads apart ("http-0", "writer",
// "completion", "dlv-genesis-2", …) — the per-thread CPU of the benchmarks reads from there.
// Linux keeps at most 15 characters: a longer name is cut to its first 15 (never refused).
//
// set_thread_nice: lowers the calling thread's CPU priority (Linux nice, 0-19: on Linux a
// thread has its own nice value, unlike POSIX's per-process one). A destination's delivery
// workers use it (`nice`) so that intake goes first when the CPU is saturated.
//
// Thread-safety: each acts on the calling thread only; call them first thing in its function.

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

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

// False when the system refused (the value stays as it was). Raising a priority back needs a
// privilege relais does not have: a thread niced stays so.
inline bool set_thread_nice(int nice) {
  return setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice) == 0;
}

}  // namespace relais
