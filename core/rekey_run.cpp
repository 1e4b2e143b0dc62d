#include "core/rekey_run.h"

#include "core/log.h"
#include "core/thread_name.h"

namespace relais {

RekeyRun::~RekeyRun() {
  stop();
}

void RekeyRun::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool RekeyRun::start(const RekeyRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  if (progress_.running || stopping_) return false;
  if (thread_.joinable()) thread_.join();  // the last run, finished
  progress_ = RekeyProgress{};
  progress_.running = true;
  thread_ = std::thread([this, request] {
    set_thread_name("rekey");
    RekeyProgress p;
    Status st = store_.rekey(request, p, [this](const RekeyProgress& now) {
      std::lock_guard<std::mutex> lock(mu_);
      progress_ = now;
      return !stopping_;
    });
    std::lock_guard<std::mutex> lock(mu_);
    progress_ = p;
    progress_.running = false;
    if (!st.ok && progress_.error.empty())
      progress_.error = st.detail.empty() ? st.error : st.detail;
    log_info("store", "rekey to key " + p.active + (p.finished ? " finished: " : " stopped: ") +
                          std::to_string(p.done) + " value(s) re-encrypted, " +
                          std::to_string(p.unreadable) + " unreadable, " +
                          (p.remaining >= 0 ? std::to_string(p.remaining) : std::string("?")) +
                          " remaining" + (progress_.error.empty() ? "" : "; " + progress_.error));
  });
  return true;
}

RekeyProgress RekeyRun::progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  return progress_;
}

}  // namespace relais
