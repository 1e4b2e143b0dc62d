// The stores a StoreBackend opens besides the messages' (core/store_backend.h), on every engine:
// the cross-references and the pairings through open_store_backend on SQLite and on PostgreSQL
// (the throwaway server of tests/core/store_backends.h), the same contract on both; the
// candidates sealed at rest; on PostgreSQL two backends on one database (two nodes) that see
// each other's writes and take turns on one person; the `store:` section's checks.

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "core/at_rest.h"
#include "core/clock.h"
#include "core/store_backend.h"
#include "store/postgresql/pg_connection.h"
#include "store/postgresql/pg_stores.h"
#include "tests/core/store_backends.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

constexpr Millis kT0 = 1'700'000'000'000;

std::shared_ptr<const AtRestCipher> test_cipher() {
  AtRestCipher::Key k;
  k.id = "k1";
  k.bytes.fill(7);
  return std::make_shared<const AtRestCipher>(std::vector<AtRestCipher::Key>{k}, "k1");
}

CrossReference xref(const std::string& d, const std::string& k, const std::string& id,
                    const std::string& v = "") {
  CrossReference r;
  r.destination = d;
  r.key = k;
  r.external_id = id;
  r.version = v;
  r.message_id = "01MSG";
  return r;
}

class BackendStores : public ::testing::TestWithParam<std::string> {
 protected:
  BackendStores() : clock_(kT0) {
    db_ = testing::StoreBackend::make(GetParam());
    where_ = db_->location();
    backend_ = open_store_backend(where_);
    StoreOptions o;
    messages_ = backend_->open_messages(o);  // creates and migrates every table
  }
  ~BackendStores() override {
    if (messages_) messages_->close();
  }

  ManualClock clock_;
  std::unique_ptr<testing::StoreBackend> db_;
  StoreLocation where_;
  std::unique_ptr<StoreBackend> backend_;
  std::unique_ptr<Store> messages_;
};

TEST_P(BackendStores, DescribesWhereWithoutThePassword) {
  EXPECT_EQ(backend_->kind(), GetParam());
  EXPECT_FALSE(backend_->state_dir().empty());
  if (GetParam() == "postgresql") {
    EXPECT_EQ(backend_->describe().find(testing::pg_password()), std::string::npos);
    EXPECT_NE(backend_->describe().find(":"), std::string::npos) << backend_->describe();
    EXPECT_EQ(backend_->state_dir(), where_.state_dir);
  }
}

TEST_P(BackendStores, CrossReferencesPutGetReplaceListRemove) {
  auto x = backend_->open_xrefs(clock_, StoreAccess::ReadWrite);
  EXPECT_FALSE(x->get("cal", "k1").has_value());
  x->put(xref("cal", "k1", "E1", "v1"));
  clock_.advance(10);
  x->put(xref("cal", "k2", "E2"));
  x->put(xref("other", "k1", "O1"));
  auto got = x->get("cal", "k1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->external_id, "E1");
  EXPECT_EQ(got->version, "v1");
  EXPECT_EQ(got->updated_at, kT0);
  EXPECT_EQ(got->message_id, "01MSG");
  clock_.advance(10);
  x->put(xref("cal", "k1", "E1", "v2"));  // replaced: one reference per key
  EXPECT_EQ(x->get("cal", "k1")->version, "v2");
  EXPECT_EQ(x->count("cal"), 2u);
  auto listed = x->list("cal", kT0, kT0 + 100, 10);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].key, "k2");  // oldest first
  EXPECT_EQ(listed[1].key, "k1");
  EXPECT_EQ(x->list("cal", kT0, kT0 + 100, 1).size(), 1u);
  EXPECT_TRUE(x->list("cal", kT0 + 100, kT0, 10).empty());
  EXPECT_THROW(x->put(xref("cal", "k3", "")), std::invalid_argument);
  EXPECT_TRUE(x->remove("cal", "k1"));
  EXPECT_FALSE(x->remove("cal", "k1"));
  EXPECT_FALSE(x->get("cal", "k1").has_value());
  EXPECT_EQ(x->count("other"), 1u);
}

TEST_P(BackendStores, PairingsProposeWaitPairUndoWithSealedCandidates) {
  auto p = backend_->open_pairings(clock_, test_cipher());
  PairingCandidate c;
  c.external_id = "G1";
  c.score = 0.8;
  c.summary = {{"nom", "Dupont"}};
  Pairing out;
  ASSERT_TRUE(p->propose("genesis", "individu:1", {c}, {"gen", "k1"}, out).ok);
  EXPECT_EQ(out.state, PairingState::Waiting);
  ASSERT_EQ(out.candidates.size(), 1u);
  EXPECT_EQ(out.candidates[0].summary["nom"], "Dupont");
  ASSERT_TRUE(p->wait("genesis", "individu:1", {"gen", "k2"}).ok);
  ASSERT_TRUE(p->wait("genesis", "individu:1", {"gen", "k2"}).ok);  // once only
  // At rest the candidates are sealed: the name is not in the table.
  auto stored = db_->column("SELECT candidates FROM pairings");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].rfind("enc1:k1:", 0), 0u);
  EXPECT_EQ(stored[0].find("Dupont"), std::string::npos);

  Status s;
  EXPECT_EQ(p->count(PairingState::Waiting, s), 1);
  EXPECT_TRUE(s.ok);
  std::vector<PairingWaiter> woken;
  ASSERT_TRUE(p->pair("genesis", "individu:1", "G1", "console", "alice", woken).ok);
  EXPECT_EQ(woken, (std::vector<PairingWaiter>{{"gen", "k1"}, {"gen", "k2"}}));
  ASSERT_TRUE(p->pair("genesis", "individu:1", "G1", "console", "alice", woken).ok);
  EXPECT_TRUE(woken.empty());
  EXPECT_EQ(p->pair("genesis", "individu:1", "G2", "console", "alice", woken).http_status, 409);
  EXPECT_EQ(p->wait("genesis", "individu:1", {"gen", "k3"}).http_status, 409);
  auto got = p->get("genesis", "individu:1", s);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state, PairingState::Paired);
  EXPECT_EQ(got->external_id, "G1");
  EXPECT_EQ(got->by, "alice");
  EXPECT_TRUE(got->waiters.empty());
  EXPECT_EQ(p->by_id(got->id, s)->person, "individu:1");

  EXPECT_EQ(p->undo("genesis", "individu:2", "alice", "x").http_status, 404);
  ASSERT_TRUE(p->undo("genesis", "individu:1", "alice", "erreur").ok);
  EXPECT_EQ(p->get("genesis", "individu:1", s)->state, PairingState::Undone);
  EXPECT_EQ(p->undo("genesis", "individu:1", "alice", "x").http_status, 409);

  ASSERT_TRUE(p->wait("capdemat", "individu:2", {"cap", "k9"}).ok);
  PairingFilter f;
  EXPECT_EQ(p->list(f, s).size(), 2u);
  f.partner = "capdemat";
  auto l = p->list(f, s);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].person, "individu:2");
  f.partner.clear();
  f.state = PairingState::Undone;
  l = p->list(f, s);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].person, "individu:1");
  f.state.reset();
  f.before_id = l[0].id + 1;
  f.limit = 1;
  l = p->list(f, s);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].person, "individu:1");
}

TEST_P(BackendStores, DocumentsVersionsActivationsAndGeneration) {
  auto d = backend_->open_documents(clock_, StoreAccess::ReadWrite);
  EXPECT_EQ(d->generation(), 0);
  DocumentVersion v;
  v.kind = "mapping";
  v.name = "cms-to-genesis";
  v.format = "yaml";
  v.content = "a: 1";
  v.author = "alice";
  v.comment = "first";
  EXPECT_EQ(d->add(v, true), 1);
  int64_t g1 = d->generation();
  EXPECT_GT(g1, 0);
  v.content = "a: 2";
  v.comment = "second";
  EXPECT_EQ(d->add(v, false), 2);
  EXPECT_EQ(d->generation(), g1);  // adding without activating is not an activation
  EXPECT_EQ(d->get("mapping", "cms-to-genesis", 0)->content, "a: 1");
  auto second = d->get("mapping", "cms-to-genesis", 2);
  ASSERT_TRUE(second.has_value());
  EXPECT_FALSE(second->active);
  EXPECT_EQ(second->content, "a: 2");
  EXPECT_EQ(second->author, "alice");
  EXPECT_FALSE(d->get("mapping", "cms-to-genesis", 3).has_value());
  EXPECT_FALSE(d->get("table", "cms-to-genesis", 0).has_value());

  EXPECT_EQ(d->activate("mapping", "cms-to-genesis", 3, "bob", "x").http_status, 404);
  EXPECT_EQ(d->generation(), g1);
  ASSERT_TRUE(d->activate("mapping", "cms-to-genesis", 2, "bob", "go").ok);
  EXPECT_GT(d->generation(), g1);
  auto versions = d->versions("mapping", "cms-to-genesis");
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].version, 2);  // newest first, without content
  EXPECT_TRUE(versions[0].active);
  EXPECT_TRUE(versions[0].content.empty());
  EXPECT_FALSE(versions[1].active);
  v.kind = "table";
  v.name = "communes";
  v.format = "csv";
  d->add(v, true);
  auto active = d->active("mapping");
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].version, 2);
  EXPECT_EQ(active[0].content, "a: 2");
  auto acts = d->activations("mapping", "cms-to-genesis");
  ASSERT_EQ(acts.size(), 2u);
  EXPECT_EQ(acts[0].version, 2);
  EXPECT_EQ(acts[0].by, "bob");
  EXPECT_EQ(acts[0].comment, "go");
  EXPECT_EQ(acts[1].by, "alice");
  // Rollback is activating an earlier version.
  ASSERT_TRUE(d->activate("mapping", "cms-to-genesis", 1, "bob", "back").ok);
  EXPECT_EQ(d->get("mapping", "cms-to-genesis", 0)->version, 1);
}

TEST_P(BackendStores, ConsoleUsersTokensAndAnAppendOnlyAuditTrail) {
  auto c = backend_->open_console(clock_, StoreAccess::ReadWrite, test_cipher());
  UserRecord u;
  u.name = "alice";
  u.role = "admin";
  u.password = "pbkdf2$x";
  u.created_by = "setup";
  ASSERT_TRUE(c->add_user(u).ok);
  EXPECT_EQ(c->add_user(u).http_status, 409);
  ASSERT_TRUE(c->update_user("alice", std::string("support"), std::nullopt, true).ok);
  EXPECT_EQ(c->update_user("bob", std::nullopt, std::nullopt, true).http_status, 404);
  auto got = c->user("alice");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->role, "support");
  EXPECT_EQ(got->password, "pbkdf2$x");
  EXPECT_TRUE(got->disabled);
  EXPECT_EQ(got->created_at, kT0);
  EXPECT_EQ(c->users().size(), 1u);

  ApiTokenRecord t;
  t.name = "cms";
  t.role = "system";
  t.sources = {"cms", "portail"};
  t.sha256 = "abc";
  t.created_by = "alice";
  ASSERT_TRUE(c->add_token(t).ok);
  EXPECT_EQ(c->add_token(t).http_status, 409);
  auto tok = c->token_by_sha256("abc");
  ASSERT_TRUE(tok.has_value());
  EXPECT_EQ(tok->sources, (std::vector<std::string>{"cms", "portail"}));
  ASSERT_TRUE(c->revoke_token("cms", kT0 + 5).ok);
  EXPECT_EQ(c->revoke_token("cms", kT0 + 6).http_status, 404);
  EXPECT_FALSE(c->token_by_sha256("abc").has_value());
  ASSERT_EQ(c->tokens().size(), 1u);
  EXPECT_EQ(c->tokens()[0].revoked_at, kT0 + 5);

  for (int i = 0; i < 3; ++i) {
    AuditEntry e;
    e.actor = "alice";
    e.role = "admin";
    e.action = i == 2 ? "delivery.retry" : "mapping.publish";
    e.object = "mapping:m" + std::to_string(i);
    e.address = "127.0.0.1";
    clock_.advance(1);
    c->audit(e);
  }
  AuditFilter f;
  EXPECT_EQ(c->audit_entries(f).size(), 3u);
  f.action = "mapping.";
  auto entries = c->audit_entries(f);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].object, "mapping:m1");  // newest first
  EXPECT_EQ(entries[0].at, kT0 + 2);
  f.action.clear();
  f.object = "m2";
  EXPECT_EQ(c->audit_entries(f).size(), 1u);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM audit"), 3);
}

INSTANTIATE_TEST_SUITE_P(Engines, BackendStores, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

// The SMS records (StoreBackend::sms): every write guarded by the state order, on both engines.
class SmsStores : public BackendStores {
 protected:
  SmsStores() : store_(backend_->sms(clock_)) {}
  sms::SmsRecord fresh(int64_t id) {
    sms::SmsRecord r;
    r.delivery_id = id;
    r.destination = "sms";
    r.driver = "kannel";
    r.number_hash = "hash";
    r.encoding = "GSM-7";
    r.segments = 1;
    r.cost_cents = 7.5;
    return r;
  }
  std::string state(int64_t id) { return store_->by_delivery(id).value_or(sms::SmsRecord{}).state; }
  std::shared_ptr<sms::SmsStore> store_;
};
using sms::SmsRecord;
using sms::SmsStore;

TEST_P(SmsStores, TheAnswerNeverMovesBackWhatAReportMovedForward) {
  SmsRecord r = fresh(1);
  ASSERT_EQ(store_->begin_attempt(r, ""), SmsStore::Begin::Started);
  EXPECT_EQ(r.reference, "d1");
  Millis created = clock_.now_ms();
  clock_.advance(1000);
  ASSERT_TRUE(store_->report("d1", "", "smsc", 8, "").has_value());
  clock_.advance(1000);
  EXPECT_TRUE(store_->answer(1, "d1", "accepted", "k-77", ""));
  auto rec = store_->by_delivery(1);
  EXPECT_EQ(rec->state, "smsc");
  EXPECT_EQ(rec->gateway_ref, "k-77");  // the answer's id is kept all the same
  EXPECT_EQ(rec->dlr_status, 8);
  EXPECT_TRUE(store_->answer(1, "d1", "retry", "", "503"));
  EXPECT_EQ(state(1), "smsc");
  EXPECT_EQ(store_->report("d1", "", "delivered", 1, "")->state, "delivered");
  EXPECT_EQ(store_->report("d1", "", "smsc", 8, "")->state, "delivered");    // late
  EXPECT_EQ(store_->report("d1", "", "failed", 2, "")->state, "delivered");  // final
  EXPECT_TRUE(store_->answer(1, "d1", "failed", "", "late refusal"));
  EXPECT_EQ(state(1), "delivered");
  // A new send starts only from the state the connector read.
  SmsRecord again = fresh(1);
  again.reference = "d1";
  EXPECT_EQ(store_->begin_attempt(again, "retry"), SmsStore::Begin::Changed);
  EXPECT_EQ(store_->begin_attempt(again, "submitting"), SmsStore::Begin::Changed);
  EXPECT_EQ(store_->by_delivery(1)->created_at, created);
}

TEST_P(SmsStores, AnUnknownSendIsSettledByItsReportOrSentAgainWithANewReference) {
  SmsRecord r = fresh(2);
  ASSERT_EQ(store_->begin_attempt(r, ""), SmsStore::Begin::Started);
  Millis created = clock_.now_ms();
  EXPECT_FALSE(store_->mark_unknown(2, "d2.2", "wrong send"));
  clock_.advance(5000);
  EXPECT_TRUE(store_->mark_unknown(2, "d2", "timeout"));
  EXPECT_FALSE(store_->mark_unknown(2, "d2", "twice"));  // only out of submitting
  auto rec = store_->by_delivery(2);
  EXPECT_EQ(rec->state, "unknown");
  EXPECT_EQ(rec->updated_at, created + 5000);  // the wait starts here
  // No report: a second send, with its own reference and the same created_at.
  clock_.advance(300000);
  SmsRecord second = fresh(2);
  second.reference = rec->reference;
  ASSERT_EQ(store_->begin_attempt(second, "unknown"), SmsStore::Begin::Started);
  EXPECT_EQ(second.reference, "d2.2");
  EXPECT_FALSE(store_->answer(2, "d2", "accepted", "", ""));  // not the current send
  EXPECT_TRUE(store_->answer(2, "d2.2", "accepted", "", ""));
  // Reports about the first send: only "delivered" counts.
  EXPECT_EQ(store_->report("d2", "", "failed", 16, "")->state, "accepted");
  EXPECT_EQ(store_->report("d2", "", "smsc", 8, "")->state, "accepted");
  EXPECT_EQ(store_->report("d2.2", "", "smsc", 8, "")->state, "smsc");
  EXPECT_EQ(store_->report("d2", "", "delivered", 1, "")->state, "delivered");
  EXPECT_EQ(store_->by_delivery(2)->created_at, created);
  // A report settles an unknown send too.
  SmsRecord third = fresh(3);
  ASSERT_EQ(store_->begin_attempt(third, ""), SmsStore::Begin::Started);
  ASSERT_TRUE(store_->mark_unknown(3, "d3", "cut"));
  EXPECT_EQ(store_->report("d3", "", "failed", 16, "")->state, "failed");
  SmsRecord resend = fresh(3);
  resend.reference = "d3";
  ASSERT_EQ(store_->begin_attempt(resend, "failed"), SmsStore::Begin::Started);
  EXPECT_EQ(resend.reference, "d3.2");
  EXPECT_EQ(store_->by_delivery(3)->dlr_status, 0);
  // Unknown references and gateway ids find nothing.
  EXPECT_FALSE(store_->report("d404", "", "delivered", 1, "").has_value());
  EXPECT_FALSE(store_->report("probe", "", "delivered", 1, "").has_value());
  EXPECT_FALSE(store_->report("", "nope", "delivered", 1, "").has_value());
}

TEST_P(SmsStores, AGatewaysIdFindsTheCurrentSendOnly) {
  SmsRecord r = fresh(4);
  ASSERT_EQ(store_->begin_attempt(r, ""), SmsStore::Begin::Started);
  ASSERT_TRUE(store_->answer(4, "d4", "accepted", "ovh-1", ""));
  EXPECT_EQ(store_->report("", "ovh-1", "failed", 2, "")->state, "failed");
  SmsRecord again = fresh(4);
  again.reference = "d4";
  ASSERT_EQ(store_->begin_attempt(again, "failed"), SmsStore::Begin::Started);
  // The first send's id is forgotten: its late reports cannot fail the second send.
  EXPECT_FALSE(store_->report("", "ovh-1", "failed", 2, "").has_value());
  ASSERT_TRUE(store_->answer(4, "d4.2", "accepted", "ovh-2", ""));
  EXPECT_EQ(store_->report("", "ovh-2", "delivered", 1, "")->state, "delivered");
}

TEST_P(SmsStores, TheOptOutListAndTheRewriteOfALegacyEntry) {
  EXPECT_EQ(store_->by_delivery(9), std::nullopt);
  SmsRecord r = fresh(9);
  ASSERT_EQ(store_->begin_attempt(r, ""), SmsStore::Begin::Started);
  EXPECT_DOUBLE_EQ(store_->by_delivery(9)->cost_cents, 7.5);
  EXPECT_EQ(backend_->sms(clock_), store_);  // one per backend
  ASSERT_TRUE(store_->add_optout({"legacy", 0, "mo:sms", "STOP"}));
  EXPECT_FALSE(store_->add_optout({"legacy", 0, "mo:sms", "ARRET"}));  // kept
  EXPECT_EQ(store_->optout("legacy")->keyword, "STOP");
  EXPECT_FALSE(store_->find_optout("keyed2", "other").has_value());
  auto found = store_->find_optout("keyed", "legacy");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->number_hash, "keyed");
  EXPECT_EQ(found->created_at, kT0);
  EXPECT_FALSE(store_->optout("legacy").has_value());
  EXPECT_EQ(store_->optout("keyed")->source, "mo:sms");
  ASSERT_TRUE(store_->add_optout({"a", 0, "admin:alice", ""}));
  auto page = store_->optouts(1, "");
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].number_hash, "a");
  EXPECT_EQ(store_->optouts(10, "a").size(), 1u);
  EXPECT_TRUE(store_->remove_optout("a"));
  EXPECT_FALSE(store_->remove_optout("a"));
}

INSTANTIATE_TEST_SUITE_P(Engines, SmsStores, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

// --- PostgreSQL only: two nodes on one database, the `store:` section's checks ------------------

class TwoNodes : public ::testing::Test {
 protected:
  TwoNodes() : clock_(kT0) {
    db_ = testing::StoreBackend::make("postgresql");
    where_ = db_->location();
    a_ = open_store_backend(where_);
    b_ = open_store_backend(where_);
    messages_a_ = a_->open_messages(StoreOptions{});
    messages_b_ = b_->open_messages(StoreOptions{});  // finds the schema migrated
  }
  ~TwoNodes() override {
    messages_a_->close();
    messages_b_->close();
  }
  // The database's connection string with the password (for a raw connection of the test).
  std::string fresh_uri() const { return where_.uri + " password=" + testing::pg_password(); }
  ManualClock clock_;
  std::unique_ptr<testing::StoreBackend> db_;
  StoreLocation where_;
  std::unique_ptr<StoreBackend> a_, b_;
  std::unique_ptr<Store> messages_a_, messages_b_;
};

TEST_F(TwoNodes, ACrossReferenceWrittenByOneIsReadByTheOther) {
  auto xa = a_->open_xrefs(clock_, StoreAccess::ReadWrite);
  auto xb = b_->open_xrefs(clock_, StoreAccess::ReadOnly);
  xa->put(xref("demarches", "dossier:42", "D42", "3"));
  auto got = xb->get("demarches", "dossier:42");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->external_id, "D42");
  EXPECT_THROW(xb->put(xref("demarches", "dossier:43", "D43")), std::runtime_error);
  EXPECT_TRUE(xa->remove("demarches", "dossier:42"));
  EXPECT_FALSE(xb->get("demarches", "dossier:42").has_value());
}

TEST_F(TwoNodes, WaitersAddedByBothNodesAtOnceAreAllWoken) {
  auto pa = a_->open_pairings(clock_, nullptr);
  auto pb = b_->open_pairings(clock_, nullptr);
  constexpr int kEach = 20;
  auto add = [&](PairingStore* p, const std::string& node) {
    for (int i = 0; i < kEach; ++i) {
      Status s = p->wait("genesis", "individu:7", {"gen", node + std::to_string(i)});
      EXPECT_TRUE(s.ok) << s.detail;
    }
  };
  std::thread ta(add, pa.get(), "a"), tb(add, pb.get(), "b");
  ta.join();
  tb.join();
  std::vector<PairingWaiter> woken;
  ASSERT_TRUE(pb->pair("genesis", "individu:7", "G7", "auto", "auto", woken).ok);
  EXPECT_EQ(woken.size(), 2u * kEach);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM pairings"), 1);
}

TEST_F(TwoNodes, DocumentsAddedByBothNodesAtOnceGetDistinctVersions) {
  auto da = a_->open_documents(clock_, StoreAccess::ReadWrite);
  auto db = b_->open_documents(clock_, StoreAccess::ReadWrite);
  constexpr int kEach = 10;
  auto add = [&](DocumentStore* d) {
    DocumentVersion v;
    v.kind = "table";
    v.name = "communes";
    v.format = "csv";
    for (int i = 0; i < kEach; ++i) d->add(v, true);
  };
  std::thread ta(add, da.get()), tb(add, db.get());
  ta.join();
  tb.join();
  auto versions = da->versions("table", "communes");
  ASSERT_EQ(versions.size(), 2u * kEach);
  EXPECT_EQ(versions.front().version, 2 * kEach);
  EXPECT_EQ(versions.back().version, 1);
  EXPECT_EQ(db->activations("table", "communes").size(), 2u * kEach);
  EXPECT_EQ(db->generation(), da->generation());
}

TEST_F(TwoNodes, AnAuditLineCannotBeChangedNorRemovedAndTokensAreSeenByTheOther) {
  auto ca = a_->open_console(clock_, StoreAccess::ReadWrite, nullptr);
  AuditEntry e;
  e.actor = "alice";
  e.action = "user.create";
  e.object = "user:bob";
  ca->audit(e);
  auto cb = b_->open_console(clock_, StoreAccess::ReadOnly, nullptr);
  ASSERT_EQ(cb->audit_entries(AuditFilter{}).size(), 1u);
  // As the store's own role (the owner of the table): refused by the database.
  pg::Result r;
  std::unique_ptr<pg::Connection> c;
  ASSERT_TRUE(pg::Connection::open(fresh_uri(), 5, c).ok);
  for (const char* sql :
       {"UPDATE audit SET actor = 'mallory'", "DELETE FROM audit", "TRUNCATE audit"}) {
    Status s = c->run_text(sql, pg::Params(), r);
    EXPECT_FALSE(s.ok) << sql;
  }
  EXPECT_EQ(db_->column("SELECT actor FROM audit"), (std::vector<std::string>{"alice"}));

  ApiTokenRecord t;
  t.name = "cms";
  t.role = "system";
  t.sha256 = "def";
  ASSERT_TRUE(ca->add_token(t).ok);
  clock_.advance(10'000);  // the other node reads its tokens again every 10 s
  EXPECT_TRUE(cb->token_by_sha256("def").has_value());
}

// The statements of the delivery path (pairings, SMS records; the cross-references are in
// postgresql_hot_statements) seek their indexes (enable_seqscan off: a Seq Scan left in
// the plan means there is no index it could use).
TEST_F(TwoNodes, TheDeliveryPathsStatementsSeekAnIndex) {
  std::unique_ptr<pg::Connection> c;
  ASSERT_TRUE(pg::Connection::open(fresh_uri(), 5, c).ok);
  ASSERT_TRUE(c->exec("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off").ok);
  auto statements = postgresql_other_hot_statements();
  ASSERT_GE(statements.size(), 9u);
  for (const auto& st : statements) {
    ASSERT_TRUE(c->exec("PREPARE hot AS " + st.sql).ok) << st.name;
    pg::Result plan;
    Status s = c->run_text("EXPLAIN EXECUTE hot(" + st.args + ")", pg::Params(), plan);
    ASSERT_TRUE(s.ok) << st.name << ": " << s.detail;
    std::string all;
    for (int i = 0; i < plan.rows(); ++i) all += plan.text(i, 0) + "\n";
    EXPECT_EQ(all.find("Seq Scan"), std::string::npos) << st.name << ":\n" << all;
    ASSERT_TRUE(c->exec("DEALLOCATE hot").ok);
  }
}

TEST(PostgresqlLocation, RefusesAPasswordInTheUriAndAMissingVariable) {
  auto db = testing::StoreBackend::make("postgresql");
  StoreLocation l = db->location();
  StoreLocation with_password = l;
  with_password.uri += " password=" + testing::pg_password();
  with_password.password_env.clear();
  try {
    open_store_backend(with_password);
    ADD_FAILURE() << "a password in the uri was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).find(testing::pg_password()), std::string::npos);
  }
  StoreLocation unset = l;
  unset.password_env = "RELAIS_TEST_PG_PASSWORD_UNSET";
  ::unsetenv(unset.password_env.c_str());
  EXPECT_THROW(open_store_backend(unset), std::runtime_error);
  StoreLocation no_state = l;
  no_state.state_dir.clear();
  EXPECT_THROW(open_store_backend(no_state), std::runtime_error);
}

}  // namespace
}  // namespace relais
