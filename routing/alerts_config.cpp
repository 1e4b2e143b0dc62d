// The declared spec of the `alerts:` section (evaluated by api/alerts.cpp).

#include "routing/alerts_config.h"

#include "core/tls_client.h"

namespace relais {
namespace {

using F = FieldType;

const ConfigSpec& webhook_spec() {
  static const ConfigSpec s{
      "webhook",
      {
          {"url", F::String, "", true, "URL receiving a JSON POST per alert"},
          {"headers", F::StringMap, "", false, "extra headers (values may use ${ENV})"},
          tls_client_field(),
      }};
  return s;
}

const ConfigSpec& smtp_spec() {
  static const ConfigSpec s{
      "smtp",
      {
          {"host", F::String, "", true, "SMTP server"},
          {"port", F::Int, "25", false, "SMTP port", {}, nullptr, 1, 65535},
          {"from", F::String, "", true, "sender address"},
          {"to", F::StringList, "", true, "recipient addresses"},
          {"tls",
           F::String,
           "starttls",
           false,
           "starttls: the session must switch to TLS (STARTTLS) before anything is sent, else "
           "the mail is not sent; tls: TLS from the first byte (usually port 465); none: clear "
           "text (a relay on the same host only)",
           {"starttls", "tls", "none"}},
          {"tls_verify", F::Bool, "true", false,
           "verify the server's certificate and name (never turn off in production)"},
          {"ca_file", F::String, "", false, "CA bundle to verify the server with (PEM)"},
          {"username", F::String, "", false,
           "login when the server needs one (the mechanism the server offers: PLAIN, LOGIN…); "
           "sent only over TLS unless tls is none"},
          {"password", F::Secret, "", false, "password (${ENV} or @file:PATH)"},
          {"timeout", F::Duration, "10s", false, "connection and answer timeout"},
      }};
  return s;
}

const ConfigSpec& rule_spec() {
  static const ConfigSpec s{
      "alert rule",
      {
          {"name", F::String, "", true, "rule name (in the alert and the audit trail)"},
          {"kind",
           F::String,
           "",
           true,
           "what is watched",
           {"dead_deliveries", "oldest_pending", "connector_failing"}},
          {"destination", F::String, "", false, "only this destination (all if absent)"},
          {"threshold",
           F::Int,
           "0",
           false,
           "dead_deliveries: fires when more than this many went dead within the window",
           {},
           nullptr,
           0,
           1e9},
          {"window", F::Duration, "15m", false,
           "dead_deliveries and connector_failing: how far back to look"},
          {"max_age", F::Duration, "30m", false,
           "oldest_pending: fires when the oldest pending delivery is older"},
      }};
  return s;
}

}  // namespace

const ConfigSpec& alerts_spec() {
  static const ConfigSpec s{
      "alerts",
      {
          {"check_every", F::Duration, "30s", false, "how often the rules are evaluated"},
          {"quiet_period", F::Duration, "30m", false,
           "after an alert was accepted by a channel, the same rule stays silent this long (a "
           "storm sends one alert)"},
          {"retry_initial", F::Duration, "30s", false,
           "an alert a channel did not accept is sent again to that channel after this delay, "
           "doubled at each failure (checked at each check_every)"},
          {"retry_max", F::Duration, "15m", false, "the longest delay between two tries"},
          {"webhook", F::Object, "", false, "send alerts as JSON POSTs", {}, &webhook_spec()},
          {"smtp", F::Object, "", false, "send alerts by e-mail", {}, &smtp_spec()},
          {"rules", F::ObjectList, "", false, "alert rules", {}, &rule_spec()},
      }};
  return s;
}

}  // namespace relais
