// The pure pieces of the démarches-simplifiées connector: answer readers, error classification,
// the message a dossier becomes, the champs' keys, the mutation documents.
#include <gtest/gtest.h>

#include "connectors/demarches/demarches.h"

namespace relais::demarches {
namespace {

using nlohmann::json;

json dossier_node() {
  return json::parse(R"({
    "id": "RG9zc2llci0xMDAx", "number": 1001, "state": "en_construction",
    "dateDepot": "2026-12-07T10:00:00+01:00",
    "dateDerniereModification": "2026-12-07T10:00:05+01:00",
    "datePassageEnInstruction": null, "dateTraitement": null, "motivation": null,
    "demarche": {"number": 42}, "usager": {"email": "u@example.invalid"},
    "demandeur": {"__typename": "PersonnePhysique", "civilite": "Mme", "nom": "Martin",
                  "prenom": "Claire", "dateDeNaissance": "1984-03-02"},
    "champs": [
      {"id": "a", "label": "Objet de la demande", "__typename": "TextChamp", "stringValue": "Aide"},
      {"id": "b", "label": "Objet de la demande", "__typename": "TextChamp", "stringValue": "Bis"},
      {"id": "c", "label": "Pièce d'identité", "__typename": "PieceJustificativeChamp",
       "stringValue": "cni.pdf",
       "files": [{"filename": "cni.pdf", "contentType": "application/pdf", "byteSize": "10",
                  "checksum": "x", "url": "https://signed.invalid/1"}]}],
    "annotations": [{"id": "d", "label": "Référence CMS76", "__typename": "TextChamp",
                     "stringValue": null}]})");
}

TEST(DemarchesReaders, ADossierBecomesAStableMessage) {
  json answer = {{"data", {{"dossier", dossier_node()}}}};
  DossierAnswer a = read_dossier_answer(answer.dump());
  ASSERT_TRUE(a.parsed) << a.broken;
  ASSERT_TRUE(a.found);
  EXPECT_EQ(a.dossier.number, 1001);
  EXPECT_EQ(a.dossier.demarche, 42);
  EXPECT_EQ(a.dossier.idempotency(), "dossier:1001:2026-12-07T10:00:05+01:00");
  const json& d = a.dossier.body["dossier"];
  EXPECT_EQ(a.dossier.body["evenement"], "dossier.en_construction");
  EXPECT_EQ(d["champs"]["objet_de_la_demande"], "Aide");
  EXPECT_EQ(d["champs"]["objet_de_la_demande_2"], "Bis");
  EXPECT_EQ(d["champs"]["piece_d_identite"], "cni.pdf");
  EXPECT_TRUE(d["annotations"]["reference_cms76"].is_null());
  EXPECT_EQ(d["demandeur"]["date_naissance"], "1984-03-02");
  ASSERT_EQ(d["pieces_jointes"].size(), 1u);
  EXPECT_EQ(d["pieces_jointes"][0]["champ"], "piece_d_identite");
  EXPECT_EQ(a.dossier.body.dump().find("signed.invalid"), std::string::npos);
  // The same dossier in a page gives the same body (webhook and catch-up agree).
  json page = {{"data",
                {{"demarche",
                  {{"number", 42},
                   {"dossiers",
                    {{"pageInfo", {{"hasNextPage", true}, {"endCursor", "c1"}}},
                     {"nodes", json::array({dossier_node()})}}}}}}}};
  PageAnswer p = read_page_answer(page.dump());
  ASSERT_TRUE(p.parsed) << p.broken;
  ASSERT_EQ(p.dossiers.size(), 1u);
  EXPECT_EQ(p.dossiers[0].body, a.dossier.body);
  EXPECT_TRUE(p.has_next);
  EXPECT_EQ(p.end_cursor, "c1");
}

TEST(DemarchesReaders, BrokenAndEmptyAnswersAreToldApart) {
  EXPECT_FALSE(read_dossier_answer("").parsed);
  EXPECT_FALSE(read_dossier_answer("<html>").parsed);
  EXPECT_FALSE(read_dossier_answer("{\"foo\":1}").parsed);
  DossierAnswer none = read_dossier_answer(R"({"data":{"dossier":null}})");
  EXPECT_TRUE(none.parsed);
  EXPECT_FALSE(none.found);
  DossierAnswer bad = read_dossier_answer(R"({"data":{"dossier":{"number":"x"}}})");
  EXPECT_FALSE(bad.parsed);
  EXPECT_FALSE(bad.broken.empty());
  PageAnswer nocursor = read_page_answer(
      R"({"data":{"demarche":{"dossiers":{"pageInfo":{"hasNextPage":true},"nodes":[]}}}})");
  EXPECT_FALSE(nocursor.parsed);
  MutationAnswer m =
      read_mutation_answer(R"({"data":{"dossierAccepter":null}})", "dossierAccepter");
  EXPECT_FALSE(m.parsed);
}

TEST(DemarchesReaders, MutationsAndErrorsAreClassified) {
  MutationAnswer ok = read_mutation_answer(
      R"({"data":{"dossierAccepter":{"dossier":{"id":"x","state":"accepte"},"errors":null}}})",
      "dossierAccepter");
  EXPECT_TRUE(ok.parsed);
  EXPECT_TRUE(ok.applied);
  EXPECT_EQ(ok.state, "accepte");
  MutationAnswer refused = read_mutation_answer(
      R"({"data":{"dossierAccepter":{"dossier":null,"errors":[{"message":"déjà accepté"}]}}})",
      "dossierAccepter");
  EXPECT_TRUE(refused.parsed);
  EXPECT_FALSE(refused.applied);
  EXPECT_EQ(refused.refusals, 1u);
  DossierAnswer e = read_dossier_answer(
      R"({"data":null,"errors":[{"message":"x","extensions":{"code":"not_found"}}]})");
  ASSERT_TRUE(e.parsed);
  ASSERT_TRUE(e.errors.present);
  Failure nf = classify_errors(e.errors);
  EXPECT_EQ(nf.action, Failure::Action::Reject);
  EXPECT_EQ(nf.error_class, "not_found");
  EXPECT_EQ(classify_errors({true, {"unauthorized"}}).action, Failure::Action::Retry);
  EXPECT_EQ(classify_errors({true, {"timeout"}}).action, Failure::Action::Retry);
  Failure schema = classify_errors({true, {""}});
  EXPECT_EQ(schema.action, Failure::Action::Reject);
  EXPECT_NE(schema.text.find("schéma"), std::string::npos);
}

TEST(DemarchesReaders, TheProbesAnswer) {
  std::string why;
  EXPECT_TRUE(read_demarche_answer(R"({"data":{"demarche":{"number":42}}})", why));
  EXPECT_FALSE(read_demarche_answer(
      R"({"data":null,"errors":[{"message":"x","extensions":{"code":"unauthorized"}}]})", why));
  EXPECT_NE(why.find("jeton"), std::string::npos);
  EXPECT_FALSE(read_demarche_answer(R"({"data":{"demarche":null}})", why));
  EXPECT_FALSE(why.empty());
}

TEST(DemarchesReaders, DecisionsAndKeys) {
  const Decision* d = find_decision("classer_sans_suite");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->to, "sans_suite");
  EXPECT_TRUE(d->motivation_required);
  EXPECT_NE(mutation_document(*d).find("$input: DossierClasserSansSuiteInput!"), std::string::npos);
  EXPECT_EQ(find_decision("supprimer"), nullptr);
  EXPECT_EQ(champ_key("Nom de l'enfant"), "nom_de_l_enfant");
  EXPECT_EQ(champ_key("  Thématique / Œuvre "), "thematique_uvre");
  EXPECT_EQ(champ_key("Écrit À"), "ecrit_a");
}

}  // namespace
}  // namespace relais::demarches
