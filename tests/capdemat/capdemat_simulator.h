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
// - the HomeFolderMappingService (homeFolderMappingRequest on the same SOAP endpoint, the
//   one-way operation of external/wsdl/HomeFolderMappingService.wsdl): the operation element
//   is validated against external/HomeFolderMappingService.xsd (refused: a soap:Client Fault);
//   as Capdémat's endpoint does, the home folder is looked up by its ExternalCapDematId (unknown:
//   a soap:Server Fault, nothing applied), then its ExternalId and its individuals' are set; an
//   individual that is not in that home folder is ignored (recorded as a violation). A request
//   received again identical is recorded as a violation ("mapping sent twice"). The answer is a
//   202 without a body;
// - local referentials (PUT /service/referential/{name}): validated against
//   referential/ReferentialData.xsd (refused: 400 and a violation);
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

#include "connectors/capdemat/capdemat.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {

class CapdematSimulator {
 public:
  // `workflow_file`: the workflow to enforce (the shared fixture, in its folder workflow/: the
  // schemas are read from that folder's parent).
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

  // A home folder Capdémat holds for this external service, by the ExternalCapDematId it gave
  // it, with its individuals' ExternalCapDematIds.
  void add_home_folder(const std::string& capdemat_id, const std::vector<std::string>& individuals);
  // The mappings applied: ExternalCapDematId → ExternalId (home folders and individuals).
  std::map<std::string, std::string> home_folder_mappings() const;
  std::map<std::string, std::string> individual_mappings() const;
  // homeFolderMappingRequests applied (received valid, home folder known), in order.
  int mapping_requests() const;
  // The next n mapping requests are applied, then their answer is lost (reset).
  void lose_next_mapping_answers(int n);

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
  tools::SinkResponse home_folder_mapping(const std::string& op_xml);
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
  std::unique_ptr<capdemat::SchemaSet> schemas_;
  std::map<std::string, std::set<std::string>> home_folders_;  // id → individuals
  std::map<std::string, std::string> hf_mappings_, ind_mappings_;
  std::set<std::string> mapping_requests_seen_;
  int mapping_requests_ = 0;
  int lose_mappings_ = 0;
  int lose_ = 0;
  int lost_ = 0;
  int get_calls_ = 0;
};

}  // namespace relais::testing
