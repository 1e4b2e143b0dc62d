#pragma once
// A Capdémat simulator for the tests, on an in-process HTTP server (relais::tools::HttpSink):
// - the external service's SOAP endpoint (POST /soap): GetRequests and AckRequests as
//   external/GetRequests.xsd and external/AckRequests.xsd describe them, behind a WS-Security
//   UsernameToken (OASIS 2004: the account, the password as text or digest, a Created within five
//   minutes, a Nonce never seen before; refusals are SOAP Faults wsse:FailedAuthentication and
//   are recorded as violations);
// - the state endpoint of a request (GET / POST /service/request/{id}/state, JSON
//   {"from","to"}): it enforces the external-service transitions of the workflow
//   (workflow/requestWorkflow.xml) and is not idempotent: a transition posted again once applied
//   (its `from` is no longer the request's state) is refused 409 and recorded as a violation
//   ("applied twice"), so that a test can prove every transition went exactly once;
// - the REST push of a request (push_request): POST of the request XML with HTTP Basic, as
//   Capdémat does on a workflow event.
// Injected faults: the next n state changes applied then their answer lost (connection reset),
// and restart() (the server goes away and comes back on the same port; Capdémat's data stays).
//
// Thread-safe: every public method locks; requests are served on the sink's thread pool.

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "tools/sink/http_sink.h"

namespace relais::testing {

class CapdematSimulator {
 public:
  // `workflow_file`: the workflow to enforce (the shared fixture).
  explicit CapdematSimulator(const std::string& workflow_file);
  ~CapdematSimulator();
  CapdematSimulator(const CapdematSimulator&) = delete;
  CapdematSimulator& operator=(const CapdematSimulator&) = delete;

  std::string url() const;       // the REST root (state endpoint: {url}/service/request/…)
  std::string soap_url() const;  // the SOAP endpoint
  void set_account(std::string user, std::string password, bool digest);

  // A request Capdémat holds: id, state and the RequestType's children (cvq:… elements,
  // namespaces declared on them or in `inner`'s own prefixes cvq/xsi) served by GetRequests.
  void add_request(const std::string& id, const std::string& state, const std::string& inner);
  std::string state(const std::string& id) const;
  // The transitions applied, in order, as "id:from>to".
  std::vector<std::string> applied() const;
  // What went wrong on the partner's side: refused credentials, transitions applied twice,
  // illegal transitions. Empty in a sound run.
  std::vector<std::string> violations() const;
  // Acknowledgements received: id → list of Erroneous flags, in order.
  std::map<std::string, std::vector<bool>> acks() const;
  int get_requests_calls() const;
  // The local referentials received (PUT /service/referential/{name}): name → document.
  std::map<std::string, std::string> referentials() const;

  // The next n state changes are applied, then their answer is lost (reset).
  void lose_next_state_answers(int n);
  int lost_answers() const;  // answers lost so far
  // The server goes away and comes back on the same port (state kept, open connections cut).
  void restart();

  // Pushes a request's XML to `url` with HTTP Basic (user:password); returns the HTTP status
  // and fills `answer`.
  static long push_request(const std::string& url, const std::string& xml, const std::string& user,
                           const std::string& password, std::string& answer);

 private:
  struct Request {
    std::string state;
    std::string inner;
    bool acked = false;
  };
  tools::SinkResponse handle(const tools::SinkRequest& r);
  tools::SinkResponse soap(const tools::SinkRequest& r);
  tools::SinkResponse state_call(const tools::SinkRequest& r, const std::string& id);
  tools::SinkResponse fault(const std::string& code, const std::string& text);
  bool external_may(const std::string& from, const std::string& to) const;
  void start();

  mutable std::mutex mu_;
  std::unique_ptr<tools::HttpSink> sink_;
  int port_ = 0;
  std::string user_ = "relais", password_ = "secret";
  bool digest_ = true;
  std::set<std::string> nonces_;
  std::map<std::string, Request> requests_;
  std::vector<std::string> applied_, violations_;
  std::map<std::string, std::vector<bool>> acks_;
  std::map<std::string, std::string> referentials_;
  // (from, to) → contexts ("" = none)
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> transitions_;
  int lose_ = 0;
  int lost_ = 0;
  int get_calls_ = 0;
};

}  // namespace relais::testing
