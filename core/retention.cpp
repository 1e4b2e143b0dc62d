// Retention: the policy's look-ups and the server's purge job (core/retention.h).

#include "core/retention.h"

#include <algorithm>
#include <chrono>

#include "core/console_store.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/store.h"

namespace relais {

const std::vector<std::string>& RetentionPolicy::final_states() {
  static const std::vector<std::string> states = {"delivered", "dead", "discarded", "skipped"};
  return states;
}

Millis RetentionPolicy::of(const std::string& route, DeliveryState state) const {
  const std::string name = to_string(state);
  if (auto r = routes.find(route); r != routes.end()) {
    if (auto s = r->second.find(name); s != r->second.end()) return s->second;
  }
  auto d = defaults.find(name);
  // A state without a retention (none is, once the configuration is loaded): kept until the
  // rows go (metadata).
  return d != defaults.end() ? d->second : metadata_ms;
}

Millis RetentionPolicy::shortest() const {
  Millis least = unrouted_ms;
  for (const auto& [state, ms] : defaults) least = std::min(least, ms);
  for (const auto& [route, states] : routes) {
    for (const auto& [state, ms] : states) least = std::min(least, ms);
  }
  return least;
}

std::string retention_summary(const RetentionResult& r) {
  return std::to_string(r.purged_messages) + " message(s) purgé(s) (" +
         std::to_string(r.purged_deliveries) + " envoi(s), " + std::to_string(r.purged_attempts) +
         " tentative(s)); " + std::to_string(r.deleted_messages) + " message(s) supprimé(s) (" +
         std::to_string(r.deleted_deliveries) + " envoi(s), " + std::to_string(r.deleted_attempts) +
         " tentative(s)); " +
         (r.vacuum_only
              ? std::string(r.checkpointed ? "VACUUM fait: place réutilisable"
                                           : "VACUUM non fait (autovacuum le fera)")
              : std::to_string(r.freed_bytes) + " octet(s) libéré(s); " +
                    std::to_string(r.free_pages) + " page(s) libre(s) restante(s)" +
                    (r.incremental ? "" : " (stockage sans auto_vacuum: relais store compact)"));
}

nlohmann::json retention_json(const RetentionResult& r, bool dry_run) {
  nlohmann::json out = {
      {"dry_run", dry_run},
      {"purged",
       {{"messages", r.purged_messages},
        {"deliveries", r.purged_deliveries},
        {"attempts", r.purged_attempts}}},
      {"deleted",
       {{"messages", r.deleted_messages},
        {"deliveries", r.deleted_deliveries},
        {"attempts", r.deleted_attempts}}},
      {"freed_bytes", r.freed_bytes},
      {"free_pages", r.free_pages},
      {"incremental_vacuum", r.incremental},
      {"wal_truncated", r.checkpointed},
      // "pages": the figures above are the file's (SQLite); "vacuum": the engine reuses the
      // space in place (PostgreSQL), wal_truncated then says whether its VACUUM ran.
      {"space", r.vacuum_only ? "vacuum" : "pages"},
      {"batches", r.batches},
      {"duration_ms", r.duration_ms},
  };
  if (dry_run) {
    out["purged"]["sample"] = r.purge_sample;
    out["deleted"]["sample"] = r.delete_sample;
  }
  return out;
}

RetentionJob::RetentionJob(Store& store, ConsoleStore* audit, Metrics& metrics, const Clock& clock,
                           RetentionPolicy policy)
    : store_(store),
      audit_(audit),
      clock_(clock),
      policy_(std::move(policy)),
      figures_(std::make_shared<Figures>()) {
  metrics.describe("relais_retention_messages_purged_total", "counter",
                   "Messages whose payloads the retention purge replaced by a tombstone");
  metrics.describe("relais_retention_messages_deleted_total", "counter",
                   "Messages whose rows the retention purge deleted (after retention.metadata)");
  metrics.describe("relais_retention_freed_bytes_total", "counter",
                   "Bytes the retention purge gave back to the file system");
  purged_ = &metrics.counter("relais_retention_messages_purged_total", {});
  deleted_ = &metrics.counter("relais_retention_messages_deleted_total", {});
  freed_ = &metrics.counter("relais_retention_freed_bytes_total", {});
  std::shared_ptr<Figures> f = figures_;
  metrics.add_collector([f](std::string& out) {
    out += "# HELP relais_retention_last_run_timestamp_seconds End of the last retention run\n";
    out += "# TYPE relais_retention_last_run_timestamp_seconds gauge\n";
    out += "relais_retention_last_run_timestamp_seconds " +
           std::to_string(static_cast<double>(f->last_run_ms.load()) / 1000.0) + "\n";
    out += "# HELP relais_retention_last_run_duration_seconds Duration of the last retention run\n";
    out += "# TYPE relais_retention_last_run_duration_seconds gauge\n";
    out += "relais_retention_last_run_duration_seconds " +
           std::to_string(static_cast<double>(f->last_duration_ms.load()) / 1000.0) + "\n";
    out += "# HELP relais_retention_runs_total Retention runs completed\n";
    out += "# TYPE relais_retention_runs_total counter\n";
    out += "relais_retention_runs_total " + std::to_string(f->runs.load()) + "\n";
  });
}

RetentionJob::~RetentionJob() {
  stop();
}

void RetentionJob::start(std::function<bool()> runs_here) {
  Millis first = std::min<Millis>(policy_.interval_ms, 10 * 60 * 1000);
  thread_.start(first, policy_.interval_ms, [this, runs_here = std::move(runs_here)] {
    if (runs_here && !runs_here()) return;
    RetentionResult r;
    Status s = run(false, "", r);
    if (!s.ok) log_warn("retention", "purge stopped: " + s.error + " " + s.detail);
  });
}

void RetentionJob::stop() {
  thread_.stop();
}

Status RetentionJob::run(bool dry_run, const std::string& by, RetentionResult& out) {
  std::lock_guard<std::mutex> one(run_mu_);
  RetentionRun r;
  r.now = clock_.now_ms();
  r.dry_run = dry_run;
  r.cancel = &thread_.stopping();
  Status s = store_.purge(policy_, r, out);
  if (dry_run) return s;
  purged_->inc(static_cast<uint64_t>(out.purged_messages));
  deleted_->inc(static_cast<uint64_t>(out.deleted_messages));
  freed_->inc(static_cast<uint64_t>(std::max<int64_t>(0, out.freed_bytes)));
  figures_->last_run_ms = clock_.now_ms();
  figures_->last_duration_ms = out.duration_ms;
  figures_->runs.fetch_add(1);
  std::string detail = retention_summary(out);
  if (!by.empty()) detail += "; lancée par " + by;
  if (!s.ok) detail += "; interrompue: " + s.error;
  if (audit_ != nullptr) {
    audit_->audit(AuditEntry{0, clock_.now_ms(), "retention", "system", "retention.run", "store",
                             detail, "local"});
  }
  log_info("retention", detail);
  return s;
}

}  // namespace relais
