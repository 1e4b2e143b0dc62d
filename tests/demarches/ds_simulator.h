#pragma once
// A démarches-simplifiées simulator for the tests: the GraphQL API v2 (POST /api/v2/graphql) on
// an in-process HTTP server (relais::tools::HttpSink), with procedures, dossiers and their
// states, and a webhook sender.
//
// As strict as the real service where relais depends on it: the bearer token must be right
// (401 otherwise); the body must be JSON with an operationName the simulator knows (getDossier,
// getDossierEtat, getDemarcheDossiers, getDemarche and the four decision mutations) and the
// variables that operation takes; every field name in the query must exist in the schema subset the
// simulator knows (a GraphQL error "Field 'x' doesn't exist", as the real schema answers).
// Mutations follow the state machine (en_construction → en_instruction → accepte / refuse /
// sans_suite; refuser and classer sans suite need a motivation; the instructeur must be known): a
// refused transition is an `errors` entry of the mutation's payload. Every refusal of a request
// relais should never have sent is recorded as a violation.
//
// Faults: the next n answers of an operation lost after it was applied (connection reset),
// HTTP 503, or a GraphQL top-level error with a code.
//
// Thread-safe: every public method locks; requests are served on the sink's thread pool.

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/sink/http_sink.h"

namespace relais::testing {

struct DsDossier {
  int64_t number = 0;
  int64_t demarche = 0;
  std::string state = "en_construction";
  std::string updated;  // dateDerniereModification
  std::string motivation;
  nlohmann::json champs = nlohmann::json::array();  // [{label, value}] (PieceJustificative: file)
  std::vector<std::string> applied;                 // the mutations applied, in order
};

class DsSimulator {
 public:
  DsSimulator(std::string token, std::string instructeur_id);
  ~DsSimulator();
  DsSimulator(const DsSimulator&) = delete;
  DsSimulator& operator=(const DsSimulator&) = delete;

  std::string url() const;  // the GraphQL endpoint
  int port() const { return sink_.port(); }

  // A dossier submitted (en_construction) on `demarche` with champs {label → value}; returns
  // its number. Each change moves the simulator's clock one second.
  int64_t submit(int64_t demarche, const std::map<std::string, std::string>& champs);
  // An usager's edit: a champ changes, dateDerniereModification moves.
  void edit(int64_t number, const std::string& label, const std::string& value);
  DsDossier dossier(int64_t number) const;

  // The webhook DS would send for `number` (form POST procedure_id, dossier_id, state,
  // updated_at) to `url`; the HTTP status answered (0: no answer).
  long send_webhook(const std::string& url, int64_t number) const;
  long send_webhook(const std::string& url, int64_t procedure, int64_t number) const;

  // The token may read procedure `demarche` (getDemarche; the others answer not_found).
  void allow_procedure(int64_t demarche);

  enum class Fault { LostAfterApply, Http503, Timeout };
  // The next `n` requests of `operation` ("*" = any) get `fault` (Timeout: a top-level GraphQL
  // error with extensions.code "timeout", nothing applied).
  void inject(const std::string& operation, Fault fault, int n = 1);
  std::vector<std::string> violations() const;
  // Requests served per operation name.
  int calls(const std::string& operation) const;

 private:
  tools::SinkResponse handle(const tools::SinkRequest& r);
  tools::SinkResponse run(const std::string& op, const nlohmann::json& vars);
  nlohmann::json dossier_json(const DsDossier& d) const;
  std::string tick();

  std::string token_;
  std::string instructeur_;
  mutable std::mutex mu_;
  std::map<int64_t, DsDossier> dossiers_;
  std::set<int64_t> allowed_;
  int64_t next_number_ = 1001;
  int64_t clock_s_ = 0;
  struct Injected {
    std::string operation;
    Fault fault;
    int left;
  };
  std::vector<Injected> faults_;
  std::vector<std::string> violations_;
  std::map<std::string, int> calls_;
  tools::HttpSink sink_;
};

}  // namespace relais::testing
