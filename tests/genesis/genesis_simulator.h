#pragma once
// A Genesis simulator for the tests: the shipped default profile (docs/connectors/genesis.md)
// over SOAP 1.1 or REST/JSON, on an in-process HTTP server (relais::tools::HttpSink), with a
// directory of persons (homonyms included) and of processes (requests).
//
// As strict as a real peer: SOAP requests need Content-Type text/xml, a SOAPAction naming the
// Body's element, the Genesis namespace on it and a WS-Security UsernameToken (OASIS 2004
// namespaces) whose password (text or digest, as configured) is right, whose Created is within
// five minutes of the simulator's clock and whose Nonce was never used before; REST requests
// need the bearer token and JSON bodies. A refusal is what Genesis would answer (a SOAP Fault
// with wsse:FailedAuthentication / wsse:MessageExpired, 401, 415) and is recorded as a
// violation, so a test can assert there was none.
//
// Faults injected per request (the next n requests of an operation, or of any): SOAP Fault
// soap:Server, HTTP 500, 503 + Retry-After, a connection reset before anything is done, a lost
// answer after the operation was applied (reset), a slow answer, Genesis's technical error code
// and a business error code the profile does not know. Business errors come from the
// data: "personne inconnue" (PERS-INCONNUE), "processus déjà clos" (PROC-CLOS), a person
// created twice with the same idExterne (PERS-DOUBLON).
//
// Thread-safe: every public method locks; requests are served on the sink's thread pool (a
// slow answer sleeps without the lock).

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/sink/http_sink.h"

namespace relais::testing {

inline constexpr const char* kGenesisNs = "urn:worldline:genesis:1.0";

struct SimPerson {
  std::string id;  // the Genesis id (GP-…)
  std::string nom_naissance, nom_usage, prenoms, date_naissance, sexe, commune;
  std::string id_externe;  // CMS76-IND-… once CMS76 created or updated it
  int updates = 0;
};

struct SimProcess {
  std::string id;  // PR-…
  std::string id_externe;
  std::string personne;  // the person's Genesis id
  std::string statut = "ouvert";
};

class GenesisSimulator {
 public:
  enum class Protocol { Soap, Rest };
  // TechnicalError: Genesis's own "try later" (code TECH-INDISPONIBLE); UnknownCode: a business
  // error whose code the profile does not list (code XYZ-42).
  enum class Fault {
    SoapServerFault,
    Http500,
    Http503,
    Reset,
    LostAfterApply,
    Slow,
    TechnicalError,
    UnknownCode
  };

  explicit GenesisSimulator(Protocol p);
  ~GenesisSimulator();
  GenesisSimulator(const GenesisSimulator&) = delete;
  GenesisSimulator& operator=(const GenesisSimulator&) = delete;

  std::string url() const;  // the base endpoint (SOAP endpoint / REST root)
  int port() const { return sink_.port(); }

  // SOAP: the account and whether the password must come as a digest (text refused then).
  void set_account(std::string user, std::string password, bool digest);
  // REST: the bearer token.
  void set_token(std::string token);
  // The clock Created is checked against (milliseconds since the epoch; the system clock by
  // default).
  void set_clock(std::function<int64_t()> now_ms);
  // `operation`: the Genesis operation name (rechercherPersonne, creerPersonne, lirePersonne,
  // trouverPersonne, mettreAJourPersonne, creerProcessus, trouverProcessus,
  // changerStatutProcessus) or "" for any. Slow: `slow_ms` before answering.
  void inject(Fault f, const std::string& operation = "", int n = 1, int slow_ms = 0);
  void set_retry_after(std::string v);

  std::string add_person(SimPerson p);  // returns its id
  void close_process(const std::string& id);

  std::vector<SimPerson> persons() const;
  std::vector<SimProcess> processes() const;
  std::optional<SimPerson> person(const std::string& id) const;
  // Operations applied (in order): "creerPersonne GP-3", "mettreAJourPersonne GP-1", …
  std::vector<std::string> applied() const;
  // Every request received: its Genesis operation name (or "?").
  std::vector<std::string> received() const;
  std::vector<std::string> violations() const;
  size_t nonces_seen() const;

 private:
  using json = nlohmann::json;
  struct Reply {
    int status = 200;
    std::string content_type;
    std::string body;
    std::map<std::string, std::string> headers;
    bool reset = false;
  };
  // What an operation does to the directory: an answer (fields or a business error).
  struct Result {
    bool ok = true;
    int http = 200;
    std::string code, message;     // business error
    json fields = json::object();  // ok: the answer's fields (identifiant, candidats…)
  };

  tools::SinkResponse serve(const tools::SinkRequest& r);
  Reply soap(const tools::SinkRequest& r, std::string& op, json& in);
  Reply rest(const tools::SinkRequest& r, std::string& op, json& in);
  // Runs `op` on the directory with `in` (the request's fields). Called with mu_ held.
  Result apply(const std::string& op, const json& in);
  json search(const json& in) const;
  Reply soap_fault(const std::string& code, const std::string& text, const std::string& detail_code,
                   int status = 500);
  Reply soap_answer(const std::string& op, const Result& res);
  Reply rest_answer(const std::string& op, const Result& res);
  Reply violation(const std::string& why, Reply r);
  bool take_fault(const std::string& op, Fault& f, int& slow_ms);

  mutable std::mutex mu_;
  Protocol protocol_;
  std::string user_ = "relais", password_ = "secret", token_ = "genesis-token";
  bool digest_ = true;
  std::function<int64_t()> now_;
  std::string retry_after_ = "2";
  struct Injected {
    Fault fault;
    std::string op;
    int slow_ms;
  };
  std::vector<Injected> faults_;
  std::set<std::string> nonces_;
  std::map<std::string, SimPerson> persons_;
  std::map<std::string, SimProcess> processes_;
  int next_person_ = 1, next_process_ = 1;
  std::vector<std::string> applied_, received_, violations_;
  tools::HttpSink sink_;
};

}  // namespace relais::testing
