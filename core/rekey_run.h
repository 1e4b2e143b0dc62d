#pragma once
// A rekey of the store (Store::rekey) run in the background of the server, for the API
// (`POST /api/v1/store/rekey` starts it, `GET` reads its progress): one run at a time; a
// second start while one runs joins it. Thread-safe. Owns its thread; the destructor stops the
// run after its current batch and joins it, so it must be destroyed before the store closes.

#include <mutex>
#include <thread>

#include "core/store.h"

namespace relais {

class RekeyRun {
 public:
  explicit RekeyRun(Store& store) : store_(store) {}
  ~RekeyRun();
  RekeyRun(const RekeyRun&) = delete;
  RekeyRun& operator=(const RekeyRun&) = delete;

  // Starts a run unless one is running. false when one was already running (it goes on).
  bool start(const RekeyRequest& request);
  // The progress of the current or last run (running=false, to_do=0 before the first).
  RekeyProgress progress() const;

 private:
  Store& store_;
  mutable std::mutex mu_;
  RekeyProgress progress_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace relais
