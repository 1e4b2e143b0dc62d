#pragma once
// A real Kannel for the tests: bearerbox, smsbox and the fake SMSC client
// (/usr/lib/kannel/test/fakesmsc) on loopback free ports, with a generated configuration in a
// temporary folder. Missing Kannel binaries make start() throw (the test fails, never skips).
//
// Not thread-safe: drive it from one thread. Owns its child processes: stop() and the
// destructor end them (SIGTERM, then SIGKILL), and they get SIGKILL if the test dies.

#include <sys/types.h>

#include <string>
#include <vector>

#include "tests/support/relais_process.h"

namespace relais::testing {

struct KannelOptions {
  std::string mo_url;  // sms-service get-url (Kannel fills %p and %a); "" = none
  std::string sendsms_user = "relais";
  std::string sendsms_password = "kannel-test-password";
  // smsbox retries a failed callback (delivery report, reply) this many times, this many
  // seconds apart: reports sent while relais restarts are not lost (production: see
  // docs/connectors/sms.md).
  int http_request_retry = 30;
  int http_queue_delay_s = 1;
};

class KannelGateway {
 public:
  explicit KannelGateway(KannelOptions options);
  ~KannelGateway();
  KannelGateway(const KannelGateway&) = delete;
  KannelGateway& operator=(const KannelGateway&) = delete;

  // bearerbox, smsbox, then a fake SMSC that only receives; waits until each is ready.
  void start();
  void stop();

  void start_smsbox();
  void stop_smsbox();
  // A fake SMSC client; with `mo` ("FROM TO text WORDS") it sends that one message first.
  void start_fakesmsc(const std::string& mo = "");
  void stop_fakesmsc();

  int sendsms_port() const { return sendsms_port_; }
  std::string sendsms_url() const;
  // Everything the fake SMSCs printed so far (one "Got message N: <from to text …>" per SMS).
  std::string fakesmsc_output() const;
  // The SMS the fake SMSCs received, decoded, concatenated parts joined.
  std::vector<std::string> messages() const;
  // How many SMS the fake SMSCs received (whole, after joining parts).
  int received() const;
  // smsbox's log (its callbacks, their retries).
  std::string smsbox_log() const;

 private:
  pid_t spawn(const std::vector<std::string>& argv, const std::string& log, int stdin_fd = -1);
  void end(pid_t& pid);
  bool log_contains(const std::string& file, const std::string& text, size_t from = 0) const;

  KannelOptions options_;
  TempDir dir_{"relais-kannel-"};
  std::string conf_;
  int admin_port_ = 0, smsbox_port_ = 0, smsc_port_ = 0, sendsms_port_ = 0;
  pid_t bearerbox_ = -1, smsbox_ = -1, fakesmsc_ = -1;
  int fakesmsc_stdin_ = -1;  // write end of the idle fake SMSC's stdin (kept open)
  int fakesmsc_runs_ = 0;
};

}  // namespace relais::testing
