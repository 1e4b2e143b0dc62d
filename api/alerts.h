#pragma once
// Alerts: rules evaluated periodically over the store and the dispatcher — dead deliveries
// above N within M minutes, oldest pending delivery older than X, a connector failing — sent by
// webhook (JSON POST) and/or e-mail (SMTP through libcurl: STARTTLS or TLS, authentication),
// with a quiet period per rule so that a storm sends one alert (the next one says how many
// evaluations were suppressed). An alert counts as sent once a channel accepted it (2xx, SMTP
// 250): the quiet period starts then. A channel that did not accept it gets it again with
// back-off (retry_initial doubling up to retry_max) until it does; nothing is swallowed.

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config_spec.h"
#include "core/console_store.h"
#include "core/periodic.h"
#include "core/retry_policy.h"
#include "core/tls_client.h"
#include "routing/alerts_config.h"
#include "routing/hub.h"

namespace relais {

struct AlertRule {
  std::string name;
  std::string kind;         // dead_deliveries | oldest_pending | connector_failing
  std::string destination;  // "" = every destination
  int64_t threshold = 0;    // dead_deliveries: fires when the count is above it
  Millis window_ms = 15 * 60000;
  Millis max_age_ms = 30 * 60000;  // oldest_pending
};

struct AlertChannels {
  std::string webhook_url;
  std::vector<std::pair<std::string, std::string>> webhook_headers;
  TlsClientOptions webhook_tls;  // CA bundle, client certificate
  std::string smtp_host;
  int smtp_port = 25;
  std::string smtp_from;
  std::vector<std::string> smtp_to;
  std::string smtp_user, smtp_password;
  std::string smtp_tls = "starttls";  // starttls | tls | none
  bool smtp_tls_verify = true;
  std::string smtp_ca_file;
  Millis timeout_ms = 10000;
};

// One alert as sent. Value type.
struct Alert {
  std::string rule, kind, destination, text;
  int64_t value = 0;       // the measured figure (count, age in seconds)
  int64_t suppressed = 0;  // evaluations that fired during the quiet period before this one
  Millis at = 0;
};

// Owns its evaluation thread; start() after the hub started, stop() before it stops.
// Thread-safe: status() may be called from any thread. Does not own the hub or the store.
class AlertMonitor {
 public:
  // Reads config.root["alerts"] (validated by the hub config); throws at start-up on
  // inconsistent rules (e.g. no channel).
  AlertMonitor(Hub& hub, ConsoleStore& store, const HubConfig& config);
  ~AlertMonitor();
  bool enabled() const { return !rules_.empty(); }
  // `runs_here` (optional): asked before each evaluation — several nodes evaluate on the
  // leader only, so that an alert is sent once.
  void start(std::function<bool()> runs_here = nullptr);
  void stop();
  // Evaluates every rule once now (the thread does it every check_every).
  void evaluate();
  nlohmann::json status();
  // Where the `oldest_pending` rules read the queues: this node's dispatcher by default; on a
  // cluster every node's (api/node_reports.h), since each node queues its own keys only. Call
  // before start().
  void set_queue_figures(std::function<std::vector<DestinationStats>()> figures) {
    queue_figures_ = std::move(figures);
  }

 private:
  struct RuleState {
    AlertRule rule;
    bool firing = false;
    Millis last_sent = 0;
    int64_t suppressed = 0;
    int64_t sent = 0;
    int64_t last_value = 0;
    std::string last_error;  // of the last send
    // An alert some channel has not accepted yet: retried at next_try on those channels.
    std::optional<Alert> pending;
    bool webhook_due = false, smtp_due = false;
    bool accepted = false;  // some channel took the pending alert already
    int failures = 0;
    Millis next_try = 0;
  };
  bool measure(const AlertRule& r, int64_t& value, std::string& text, std::string& dest);
  // "" when the channel accepted the alert, else what failed.
  std::string send_webhook(const Alert& a);
  std::string send_mail(const Alert& a);
  Hub& hub_;
  std::function<std::vector<DestinationStats>()> queue_figures_;  // null: hub_'s dispatcher
  ConsoleStore& store_;
  AlertChannels channels_;
  Millis check_every_ms_ = 30000;
  Millis quiet_ms_ = 30 * 60000;
  RetryPolicy backoff_{30000, 15 * 60000};  // retry_initial, retry_max (doubling)
  std::vector<AlertRule> rules_;
  std::mutex mu_;  // guards states_ and evaluations_
  std::vector<RuleState> states_;
  int64_t evaluations_ = 0;
  PeriodicThread thread_;  // evaluate() every check_every
};

}  // namespace relais
