#pragma once
// démarches-simplifiées (the State's online forms, API v2 GraphQL): the `demarches-simplifiees`
// connector kind (instruction decisions sent back by GraphQL mutations, and the inbound webhook
// that fetches a dossier and commits it as a message of a configured source) and the
// `demarches-simplifiees` polling-source kind (the catch-up over dossiers changed since the
// last seen date). See docs/connectors/demarches-simplifiees.md.
//
// This header holds the pure pieces that the connector, the poller, their tests and the fuzz
// target share: the GraphQL documents sent, the answer readers (never throw; a broken answer is
// told from an empty one), the classification of GraphQL errors and the shaping of a dossier
// into a message body. Stateless and thread-safe.
//
// Personal data: a dossier's champs, annotations and demandeur go only into the message body
// (encrypted at rest by the store when configured); failure texts are fixed French
// explanations with an error code, never démarches-simplifiées's own words.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector.h"
#include "core/poller.h"

namespace relais {

// Registers the "demarches-simplifiees" connector kind.
void register_demarches_connector(ConnectorRegistry& registry);
// Registers the "demarches-simplifiees" polling-source kind (the catch-up).
void register_demarches_poller(PollerRegistry& registry);

namespace demarches {

inline constexpr const char* kKind = "demarches-simplifiees";

// The GraphQL documents relais sends (operation names the simulator and the fuzz corpus know).
// getDossier($number: Int!): one dossier with its champs, annotations and attachments' metadata.
std::string dossier_query();
// getDemarcheDossiers($demarche: Int!, $since: ISO8601DateTime, $first: Int, $after: String):
// a page of the procedure's dossiers updated since `since`, oldest first, with the same fields.
std::string dossiers_query();
// getDossierEtat($number: Int!): a dossier's id, state and procedure, before a decision.
std::string state_query();

// One instruction decision: the message's `decision`, the GraphQL mutation, the state the
// dossier is in after it and the state it must be in before it.
struct Decision {
  std::string name;      // passer_en_instruction, accepter, refuser, classer_sans_suite
  std::string mutation;  // dossierPasserEnInstruction, …
  std::string from;      // en_construction / en_instruction
  std::string to;        // en_instruction, accepte, refuse, sans_suite
  bool motivation_required = false;
};
// The decision named `name`, or null.
const Decision* find_decision(const std::string& name);
// The mutation document of `d` (operation name = d.mutation, variable $input).
std::string mutation_document(const Decision& d);

// getDemarche($demarche: Int!): the procedure's number only — the probe (is the token valid and
// allowed on this procedure?).
std::string demarche_query();
// Whether the answer to getDemarche names the procedure; false with `why` (French) otherwise.
bool read_demarche_answer(const std::string& body, std::string& why);

// How a GraphQL or HTTP failure is handled.
struct Failure {
  enum class Action { Retry, Reject };
  Action action = Action::Retry;
  std::string error_class;  // graphql, auth, not_found, state, broken
  int code = 0;
  std::string text;  // French, for the desk; no value of the answer
};

// The top-level `errors` of an answer: their `extensions.code` (or "" when absent), in order.
struct ErrorList {
  bool present = false;
  std::vector<std::string> codes;
};
// What to do with an answer's top-level errors (present): not_found → reject; unauthorized,
// forbidden → retry (a person must renew the token); timeout, internal/server errors, rate
// limits → retry; anything else (a query the schema refuses) → reject.
Failure classify_errors(const ErrorList& errors);

// A dossier as read from an answer. `body` is the message the source receives.
struct Dossier {
  int64_t number = 0;
  std::string id;                   // the GraphQL id (dossierId of the mutations)
  std::string state;                // en_construction, en_instruction, accepte, refuse, sans_suite
  std::string updated;              // dateDerniereModification (ISO 8601, as sent)
  int64_t demarche = 0;             // the procedure's number (0 when the answer does not say)
  nlohmann::json body;              // the message body (see dossier_message)
  std::string idempotency() const;  // "dossier:<number>:<updated>"
};

// The answer to getDossier / getDossierEtat.
struct DossierAnswer {
  bool parsed = false;  // JSON with `data` or `errors`; false: broken (see `broken`)
  std::string broken;
  ErrorList errors;
  bool found = false;  // data.dossier is an object
  Dossier dossier;
};
DossierAnswer read_dossier_answer(const std::string& body);

// The answer to getDemarcheDossiers.
struct PageAnswer {
  bool parsed = false;
  std::string broken;
  ErrorList errors;
  std::vector<Dossier> dossiers;
  bool has_next = false;
  std::string end_cursor;
};
PageAnswer read_page_answer(const std::string& body);

// The answer to a decision's mutation.
struct MutationAnswer {
  bool parsed = false;
  std::string broken;
  ErrorList errors;
  bool applied = false;  // the payload's dossier came back, without payload errors
  size_t refusals = 0;   // the payload's own `errors` (a refused transition)
  std::string state;     // the dossier's state after it, when given
};
MutationAnswer read_mutation_answer(const std::string& body, const std::string& mutation);

// The body of the message a dossier becomes: {"evenement": "dossier.<state>", "demarche": N,
// "dossier": {numero, id, etat, dates, motivation, usager, demandeur, champs, annotations,
// pieces_jointes}}. champs and annotations are objects keyed by champ_key(label); attachments
// keep their metadata only (name, type, size, checksum, the champ's key), never their URL
// (signed, different at each fetch): the same dossier fetched twice gives the same body.
// False with `why` when the node is not a dossier.
bool dossier_message(const nlohmann::json& node, Dossier& out, std::string& why);
// A positive decimal number of at most 18 digits (a démarche's or a dossier's number, given as
// text by a webhook, a configuration or a message); false for anything else.
bool parse_number(const std::string& text, int64_t& out);
// A champ's label as a key: lower case ASCII, French accents folded, anything else '_'
// ("Nom de l'enfant" → "nom_de_l_enfant").
std::string champ_key(const std::string& label);

}  // namespace demarches
}  // namespace relais
