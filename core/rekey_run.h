#pragma once
// A rekey of the store (Store::rekey) run in the background of the server, for the API
// (`POST /api/v1/store/rekey` starts it, `GET` reads its progress): one run at a time; a
// second start while one runs joins it. Thread-safe. Owns its thread; stop() (and the
// destructor) ends the run after its current batch and joins it: call it before the store
// closes (the server's shutdown does). The rekey resumes where it was when started again.

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
  // Stops the run after its current batch and waits for it; start() refuses afterwards.
  void stop();

 private:
  Store& store_;
  mutable std::mutex mu_;
  RekeyProgress progress_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace relais
