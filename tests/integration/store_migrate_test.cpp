// `relais store migrate --from sqlite:PATH --to postgresql:URI` (issue 15) with the real binary
// and a throwaway PostgreSQL 15 server (tests/support/pg_server.h): a SQLite store filled
// through the real stores (messages with deliveries in every state, attempts, idempotency keys,
// a polling source's checkpoint and rejects, cross-references, documents and activations,
// pairings, console users, tokens and audit trail, SMS records and opt-outs; encrypted at
// rest) is migrated and verified, then read back through the store interfaces on PostgreSQL;
// a migration killed mid-way (by the test hook, and by SIGKILL from outside at any instant)
// resumes without copying anything twice; a row changed in PostgreSQL is named by
// --verify-only; a target holding other data, or a store held by a relais, is refused; and the
// copy's rate is measured on 100,000 messages.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>

#include "core/at_rest.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/store_backend.h"
#include "core/store_lock.h"
#include "store/postgresql/pg_connection.h"
#include "tests/support/pg_server.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

constexpr const char* kPasswordEnv = "RELAIS_MIGRATE_TEST_PG_PASSWORD";

std::shared_ptr<const AtRestCipher> test_cipher() {
  AtRestCipher::Key k;
  k.id = "A";
  for (size_t i = 0; i < k.bytes.size(); ++i) k.bytes[i] = static_cast<unsigned char>(i * 7 + 1);
  return std::make_shared<const AtRestCipher>(std::vector<AtRestCipher::Key>{k}, "A");
}

// One PostgreSQL server for the binary; a fresh database per test.
class StoreMigrate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pg_ = new PgServer();
    pg_->start();
    ASSERT_EQ(::setenv(kPasswordEnv, pg_->options().password.c_str(), 1), 0);
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }

  void SetUp() override {
    static int n = 0;
    const std::string db = "migrated" + std::to_string(++n);
    pg_->sql("CREATE DATABASE " + db + " OWNER " + pg_->options().user);
    uri_ = "host=127.0.0.1 port=" + std::to_string(pg_->port()) + " dbname=" + db +
           " user=" + pg_->options().user;
    sqlite_ = dir_.path() + "/relais.db";
  }

  // `relais store migrate` on this test's store and database, with `extra` arguments.
  CommandResult migrate(std::vector<std::string> extra = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(300)) {
    std::vector<std::string> argv = {
        RELAIS_BINARY,        "store",          "migrate",   "--from", "sqlite:" + sqlite_, "--to",
        "postgresql:" + uri_, "--password-env", kPasswordEnv};
    for (auto& a : extra) argv.push_back(std::move(a));
    return run_command(argv, timeout);
  }

  // A connection of the test's own to the target.
  std::unique_ptr<pg::Connection> target() {
    std::unique_ptr<pg::Connection> c;
    Status s = pg::Connection::open(uri_, 10, c, pg_->options().password);
    EXPECT_TRUE(s.ok) << s.detail;
    return c;
  }
  int64_t target_scalar(const std::string& sql) {
    auto c = target();
    pg::Result r;
    Status s = c->run_text(sql, {}, r);
    EXPECT_TRUE(s.ok) << s.detail << " (" << sql << ")";
    return r.rows() > 0 ? r.int64(0, 0) : -1;
  }
  void target_exec(const std::string& sql) {
    Status s = target()->exec(sql);
    ASSERT_TRUE(s.ok) << s.detail << " (" << sql << ")";
  }

  StoreLocation sqlite_location() const {
    StoreLocation l;
    l.kind = "sqlite";
    l.path = sqlite_;
    return l;
  }
  StoreLocation pg_location() const {
    StoreLocation l;
    l.kind = "postgresql";
    l.uri = uri_;
    l.password_env = kPasswordEnv;
    l.state_dir = dir_.path() + "/pg-state";
    return l;
  }

  static PgServer* pg_;
  TempDir dir_{"relais-migrate-"};
  std::string uri_;
  std::string sqlite_;
};
PgServer* StoreMigrate::pg_ = nullptr;

// What the filled store holds, to read it back on the other side.
struct Filled {
  std::vector<std::string> message_ids;
  std::vector<int64_t> delivery_ids;
  int64_t dead_delivery = 0;
};

Incoming incoming(IdGenerator& ids, int n, Millis at, int deliveries) {
  auto m = std::make_shared<Message>();
  m->id = ids.next();
  m->source = "cms";
  m->type = n % 3 == 0 ? "rdv.planned" : "rdv.cancelled";
  m->correlation = "rdv:" + std::to_string(n % 17);
  m->idempotency = "event-" + std::to_string(n);
  m->headers = {{"x-request-id", "req-" + std::to_string(n)}};
  // Texts COPY must escape, and a name (personal: encrypted at rest).
  m->body = "{\"n\":" + std::to_string(n) +
            ",\"nom\":\"Dupont\\tMarie\",\"note\":\"ligne 1\\nligne 2 \\\\ fin\"}";
  m->received_at = at;
  Incoming in;
  in.message = std::move(m);
  in.body_digest = "digest-" + std::to_string(n);
  for (int d = 0; d < deliveries; ++d) {
    NewDelivery nd;
    nd.destination = d == 0 ? "calendar" : "sms";
    nd.route = "r" + std::to_string(d);
    nd.mapping = d == 0 ? "rdv-calendar" : "";
    nd.not_before = d == 1 ? at + 3600000 : 0;
    in.deliveries.push_back(nd);
  }
  return in;
}

// Fills every store of the SQLite store through the real stores (encrypted at rest).
Filled fill(const StoreLocation& where, int messages) {
  const Clock& clock = SystemClock::instance();
  IdGenerator ids(clock);
  auto cipher = test_cipher();
  auto backend = open_store_backend(where);
  StoreOptions so;
  so.cipher = cipher;
  auto store = backend->open_messages(so);
  Filled f;
  const Millis t0 = clock.now_ms();
  for (int start = 0; start < messages; start += 1000) {
    std::vector<Incoming> batch;
    for (int n = start; n < std::min(messages, start + 1000); ++n) {
      batch.push_back(incoming(ids, n, t0 + n, n < 60 ? 2 : 1));
    }
    for (const auto& r : store->accept(std::move(batch))) {
      EXPECT_EQ(r.kind, AcceptResult::Kind::Created) << r.error;
      f.message_ids.push_back(r.id);
    }
  }
  // Deliveries in every state, with attempts, payloads, flags and references.
  const DeliveryState states[] = {DeliveryState::Delivered, DeliveryState::Retrying,
                                  DeliveryState::Dead,      DeliveryState::Discarded,
                                  DeliveryState::Skipped,   DeliveryState::Pending};
  for (size_t i = 0; i < std::min<size_t>(60, f.message_ids.size()); ++i) {
    auto rec = store->message(f.message_ids[i], false);
    EXPECT_TRUE(rec.has_value());
    if (!rec) continue;
    for (const auto& d : rec->deliveries) {
      f.delivery_ids.push_back(d.id);
      DeliveryState s = states[(i + static_cast<size_t>(d.id)) % 6];
      if (s == DeliveryState::Pending) continue;
      for (int a = 1; a <= (s == DeliveryState::Dead ? 3 : 1); ++a) {
        DeliveryUpdate u;
        u.id = d.id;
        u.state = a < 3 && s == DeliveryState::Dead ? DeliveryState::Retrying : s;
        u.attempts = a;
        u.now = t0 + 1000 * a;
        u.next_attempt_at = s == DeliveryState::Retrying ? t0 + 60000 : 0;
        u.attempt = Attempt{t0 + 1000 * a,
                            40 + a,
                            s == DeliveryState::Delivered ? "delivered"
                            : s == DeliveryState::Dead    ? "reject"
                                                          : "retry",
                            "http",
                            s == DeliveryState::Delivered ? 201 : 503,
                            "réponse du partenaire",
                            "{\"nom\":\"Dupont\"}"};
        if (s == DeliveryState::Delivered) u.external_ref = "evt-" + std::to_string(d.id);
        u.payload = "{\"to\":\"Marie Dupont\",\"id\":" + std::to_string(d.id) + "}";
        u.mapping_version = 3;
        if (i % 4 == 0) u.flags = {"ban: adresse à vérifier"};
        if (s == DeliveryState::Discarded) u.action_text = "doublon";
        Status st = store->apply(u);
        EXPECT_TRUE(st.ok) << st.detail;
      }
      if (s == DeliveryState::Dead) f.dead_delivery = d.id;
    }
  }
  // A polling source's batch: its checkpoint and its rejects.
  {
    SourceCheckpoint cp;
    cp.source = "cms-db";
    cp.value = "{\"id\":4521}";
    cp.rejects = {SourceReject{"id 4519", 422, "type manquant", "no type"},
                  SourceReject{"id 4520", 400, "JSON illisible", "offset 3"}};
    std::vector<Incoming> batch;
    batch.push_back(incoming(ids, 1000000, t0, 1));
    cp.positions = {"id 4521"};
    auto r = store->accept_polled(std::move(batch), cp, t0);
    EXPECT_EQ(r.at(0).kind, AcceptResult::Kind::Created) << r.at(0).error;
    f.message_ids.push_back(r.at(0).id);
  }
  store->close();

  auto xrefs = backend->open_xrefs(clock, StoreAccess::ReadWrite);
  for (int i = 0; i < 5; ++i) {
    xrefs->put(CrossReference{"calendar", "rdv:" + std::to_string(i), "AAMk-" + std::to_string(i),
                              "v" + std::to_string(i), 0,
                              f.message_ids[static_cast<size_t>(i) % f.message_ids.size()]});
  }
  xrefs->put(CrossReference{"genesis", "individu:1", "G-77", "", 0, f.message_ids[0]});

  auto docs = backend->open_documents(clock, StoreAccess::ReadWrite);
  for (int v = 1; v <= 2; ++v) {
    DocumentVersion d;
    d.kind = "mapping";
    d.name = "rdv-calendar";
    d.format = "yaml";
    d.content = "version: " + std::to_string(v) + "\n";
    d.author = "alice";
    d.comment = "v" + std::to_string(v);
    d.created_at = t0 + v;
    docs->add(d, true);
  }
  EXPECT_TRUE(docs->activate("mapping", "rdv-calendar", 1, "bob", "retour arrière").ok);

  auto pairings = backend->open_pairings(clock, cipher);
  Pairing p;
  PairingCandidate cand{"G-1", 0.9, {{"nom", "Dupont"}, {"naissance", "1950-01-02"}}};
  EXPECT_TRUE(pairings->propose("genesis", "individu:1", {cand}, {"genesis", "individu:1"}, p).ok);
  EXPECT_TRUE(pairings->propose("genesis", "individu:2", {cand}, {}, p).ok);
  std::vector<PairingWaiter> woken;
  EXPECT_TRUE(pairings->pair("genesis", "individu:2", "G-1", "console", "alice", woken).ok);

  auto console = backend->open_console(clock, StoreAccess::ReadWrite, cipher);
  EXPECT_TRUE(
      console->add_user(UserRecord{"alice", "admin", "pbkdf2$x", t0, "cli:root", false}).ok);
  EXPECT_TRUE(console->add_user(UserRecord{"carol", "support", "pbkdf2$y", t0, "alice", true}).ok);
  EXPECT_TRUE(
      console->add_token(ApiTokenRecord{"cms", "system", {"cms", "cms-db"}, "ab12", t0, "alice", 0})
          .ok);
  EXPECT_TRUE(console->revoke_token("cms", t0 + 5).ok);
  for (int i = 0; i < 4; ++i) {
    console->audit(AuditEntry{0, t0 + i, "alice", "admin", "delivery.retry",
                              "delivery:" + std::to_string(i), "raison", "127.0.0.1"});
  }

  auto sms = backend->sms(clock);
  sms::SmsRecord r;
  r.delivery_id = f.delivery_ids.at(0);
  r.destination = "sms";
  r.driver = "kannel";
  r.number_hash = "hash-1";
  r.encoding = "GSM-7";
  r.segments = 2;
  r.cost_cents = 7.35;
  EXPECT_EQ(sms->begin_attempt(r, ""), sms::SmsStore::Begin::Started);
  EXPECT_TRUE(sms->answer(r.delivery_id, r.reference, "accepted", "gw-1", "ok"));
  EXPECT_TRUE(sms->add_optout(sms::OptOut{"hash-2", t0, "mo:sms", "STOP"}));
  return f;
}

std::string text(const Delivery& d) {
  std::string out = std::to_string(d.id) + "|" + std::to_string(d.message_seq) + "|" +
                    d.message_id + "|" + d.destination + "|" + d.route + "|" + d.mapping + "|" +
                    std::to_string(d.mapping_version) + "|" + to_string(d.state) + "|" +
                    std::to_string(d.attempts) + "|" + std::to_string(d.next_attempt_at) + "|" +
                    std::to_string(d.not_before) + "|" + std::to_string(d.updated_at) + "|" +
                    d.last_outcome + "|" + d.last_class + "|" + std::to_string(d.last_code) + "|" +
                    d.last_text + "|" + d.external_ref + "|" + d.payload.value_or("(none)");
  for (const auto& f : d.flags) out += "|flag " + f;
  for (const auto& a : d.history) {
    out += "|attempt " + std::to_string(a.at) + " " + std::to_string(a.duration_ms) + " " +
           a.outcome + " " + a.error_class + " " + std::to_string(a.code) + " " + a.text + " " +
           a.excerpt;
  }
  return out;
}

std::string text(const MessageRecord& r) {
  const Message& m = *r.message;
  std::string out = std::to_string(m.seq) + "|" + m.id + "|" + m.source + "|" + m.type + "|" +
                    m.correlation + "|" + m.idempotency + "|" + m.body + "|" +
                    std::to_string(m.received_at) + "|" + m.unreadable;
  for (const auto& [k, v] : m.headers) out += "|" + k + "=" + v;
  for (const auto& d : r.deliveries) out += "\n  " + text(d);
  return out;
}

std::string text(const std::optional<Pairing>& p) {
  if (!p) return "(none)";
  std::string out = std::to_string(p->id) + "|" + p->partner + "|" + p->person + "|" +
                    p->external_id + "|" + p->how + "|" + p->by + "|" + p->reason + "|" +
                    std::to_string(p->created_at) + "|" + std::to_string(p->updated_at);
  for (const auto& c : p->candidates) out += "|" + c.external_id + " " + c.summary.dump();
  for (const auto& w : p->waiters) out += "|wait " + w.destination + " " + w.key;
  return out;
}

std::string text(const std::vector<AuditEntry>& entries) {
  std::string out;
  for (const auto& e : entries) {
    out += std::to_string(e.id) + " " + std::to_string(e.at) + " " + e.actor + " " + e.role + " " +
           e.action + " " + e.object + " " + e.detail + " " + e.address + "\n";
  }
  return out;
}

std::string text(const std::optional<sms::SmsRecord>& r) {
  if (!r) return "(none)";
  return std::to_string(r->delivery_id) + "|" + r->destination + "|" + r->driver + "|" +
         r->reference + "|" + r->gateway_ref + "|" + r->number_hash + "|" + r->encoding + "|" +
         std::to_string(r->segments) + "|" + std::to_string(r->cost_cents) + "|" + r->state + "|" +
         std::to_string(r->dlr_status) + "|" + r->detail + "|" + std::to_string(r->created_at) +
         "|" + std::to_string(r->updated_at);
}

// Everything `fill` wrote, read through one backend's stores, as text.
std::string read_back(StoreBackend& backend, const Filled& f) {
  const Clock& clock = SystemClock::instance();
  auto cipher = test_cipher();
  StoreOptions so;
  so.cipher = cipher;
  so.read_pool = 1;
  auto store = backend.open_messages(so);
  std::string out;
  for (const auto& id : f.message_ids) {
    auto rec = store->message(id, true);
    out += rec ? text(*rec) : "(missing " + id + ")";
    out += "\n";
  }
  for (int64_t id : f.delivery_ids) {
    auto d = store->delivery(id);
    out += d ? text(*d) : "(missing delivery)";
    out += "\n";
  }
  out += "checkpoint " + store->checkpoint("cms-db").value_or("(none)") + "\n";
  for (const auto& r : store->rejects("cms-db", 0, 10)) {
    out += "reject " + std::to_string(r.id) + " " + r.reject.position + " " +
           std::to_string(r.reject.status) + " " + r.reject.error + " " + r.reject.detail + " " +
           std::to_string(r.at) + "\n";
  }
  store->close();
  auto xrefs = backend.open_xrefs(clock, StoreAccess::ReadOnly);
  for (const auto& dest : {"calendar", "genesis"}) {
    for (const auto& x : xrefs->list(dest, 0, std::numeric_limits<Millis>::max(), 100)) {
      out += "xref " + x.destination + " " + x.key + " " + x.external_id + " " + x.version + " " +
             std::to_string(x.updated_at) + " " + x.message_id + "\n";
    }
  }
  auto docs = backend.open_documents(clock, StoreAccess::ReadOnly);
  for (const auto& d : docs->versions("mapping", "rdv-calendar")) {
    out += "doc " + std::to_string(d.version) + " " + d.content + " " + d.author + " " + d.comment +
           " " + std::to_string(d.created_at) + (d.active ? " active" : "") + "\n";
  }
  for (const auto& a : docs->activations("mapping", "rdv-calendar")) {
    out += "activation " + std::to_string(a.version) + " " + a.by + " " + a.comment + " " +
           std::to_string(a.at) + "\n";
  }
  out += "generation " + std::to_string(docs->generation()) + "\n";
  auto pairings = backend.open_pairings(clock, cipher);
  Status st;
  out += "pairing " + text(pairings->get("genesis", "individu:1", st)) + "\n";
  out += "pairing " + text(pairings->get("genesis", "individu:2", st)) + "\n";
  auto console = backend.open_console(clock, StoreAccess::ReadOnly, cipher);
  for (const auto& u : console->users()) {
    out += "user " + u.name + " " + u.role + " " + u.password + " " + std::to_string(u.created_at) +
           " " + u.created_by + (u.disabled ? " disabled" : "") + "\n";
  }
  for (const auto& t : console->tokens()) {
    out += "token " + t.name + " " + t.role + " " + t.sha256 + " " + std::to_string(t.revoked_at) +
           "\n";
  }
  out += text(console->audit_entries(AuditFilter{}));
  auto sms = backend.sms(clock);
  out += "sms " + text(sms->by_delivery(f.delivery_ids.at(0))) + "\n";
  auto o = sms->optout("hash-2");
  out += "optout " + (o ? o->source + " " + o->keyword : std::string("(none)")) + "\n";
  return out;
}

// The rows of every table in the target, by the migration's progress table.
int64_t progress_rows(pg::Connection& c) {
  pg::Result r;
  if (!c.run_text("SELECT COALESCE(SUM(rows), 0) FROM store_migration_progress", {}, r).ok) {
    return 0;  // not created yet
  }
  return r.int64(0, 0);
}

TEST_F(StoreMigrate, CopiesEveryStoreAndRelaisReadsTheSameThingsOnPostgresql) {
  Filled f = fill(sqlite_location(), 120);
  CommandResult r = migrate({"--batch", "7"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("migrated and verified: 16 tables equal"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("deliveries"), std::string::npos) << r.out;  // the summary
  // Plain progress lines when stderr is not a terminal, with the rate.
  EXPECT_TRUE(
      std::regex_search(r.err, std::regex("copy +messages +121 / 121 rows, [0-9,]+ rows/s")))
      << r.err;
  EXPECT_EQ(r.err.find(pg_->options().password), std::string::npos);
  EXPECT_EQ(r.out.find(pg_->options().password), std::string::npos);

  // Values copied as stored: still encrypted in PostgreSQL.
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM messages WHERE body NOT LIKE 'enc1:A:%'"), 0);
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM messages"), 121);

  auto sqlite = open_store_backend(sqlite_location());
  const std::string before = read_back(*sqlite, f);
  auto pgb = open_store_backend(pg_location());
  const std::string after = read_back(*pgb, f);
  EXPECT_EQ(after, before);
  EXPECT_NE(before.find("Dupont\\tMarie"), std::string::npos);  // decrypted on both sides
  EXPECT_NE(before.find("xref calendar rdv:4"), std::string::npos);
  EXPECT_NE(before.find("delivery.retry delivery:3"), std::string::npos);

  // The sequences go on past the copied rows: relais writes on the migrated store.
  {
    const Clock& clock = SystemClock::instance();
    IdGenerator ids(clock);
    StoreOptions so;
    so.cipher = test_cipher();
    so.read_pool = 1;
    auto store = pgb->open_messages(so);
    std::vector<Incoming> batch;
    batch.push_back(incoming(ids, 5000000, clock.now_ms(), 1));
    auto res = store->accept(std::move(batch));
    ASSERT_EQ(res.at(0).kind, AcceptResult::Kind::Created) << res.at(0).error;
    auto rec = store->message(res.at(0).id, false);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->message->seq, 122);
    EXPECT_GT(rec->deliveries.at(0).id, f.delivery_ids.back());
    // The key of a copied message is still known: a duplicate.
    std::vector<Incoming> again;
    again.push_back(incoming(ids, 7, clock.now_ms(), 1));
    EXPECT_EQ(store->accept(std::move(again)).at(0).kind, AcceptResult::Kind::Duplicate);
    store->close();
    auto console = pgb->open_console(clock, StoreAccess::ReadWrite, nullptr);
    console->audit(AuditEntry{0, clock.now_ms(), "alice", "admin", "store.migrated", "", "", ""});
    auto entries = console->audit_entries(AuditFilter{});
    ASSERT_FALSE(entries.empty());
    EXPECT_EQ(entries.front().id, 5);  // after the 4 copied
  }
  // The audit trail is still append-only on PostgreSQL.
  EXPECT_FALSE(target()->exec("DELETE FROM audit").ok);
}

TEST_F(StoreMigrate, KilledMidwayResumesWithoutCopyingAnythingTwice) {
  Filled f = fill(sqlite_location(), 400);
  auto sqlite = open_store_backend(sqlite_location());
  const std::string before = read_back(*sqlite, f);

  // Killed by the test hook right after its 6th batch's commit.
  ASSERT_EQ(::setenv("RELAIS_MIGRATE_TEST_KILL_AFTER_BATCHES", "6", 1), 0);
  CommandResult killed = migrate({"--batch", "25"});
  ::unsetenv("RELAIS_MIGRATE_TEST_KILL_AFTER_BATCHES");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.out << killed.err;
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM messages"), 150);  // 6 batches of 25
  EXPECT_EQ(target_scalar("SELECT rows FROM store_migration_progress WHERE table_name = "
                          "'messages'"),
            150);
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM deliveries"), 0);
  // relais refuses a database whose migration has not finished (its deliveries are not all
  // there yet).
  try {
    StoreOptions so;
    so.read_pool = 1;
    open_store_backend(pg_location())->open_messages(so);
    ADD_FAILURE() << "relais opened a half-migrated database";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the migration of " + sqlite_ + " into 127.0.0.1:"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("has not finished"), std::string::npos) << e.what();
  }

  // Killed from outside at whatever instant it is (mid-batch, mid-COPY…), once it has made
  // progress of its own.
  TempDir logs("relais-migrate-logs-");
  pid_t pid =
      start_command({RELAIS_BINARY, "store", "migrate", "--from", "sqlite:" + sqlite_, "--to",
                     "postgresql:" + uri_, "--password-env", kPasswordEnv, "--batch", "3"},
                    logs.path() + "/out", logs.path() + "/err");
  auto watcher = target();
  ASSERT_TRUE(wait_until([&] { return progress_rows(*watcher) > 200; }, std::chrono::seconds(60),
                         std::chrono::milliseconds(1)))
      << read_file(logs.path() + "/err");
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_command(pid, std::chrono::seconds(30)), 128 + SIGKILL)
      << read_file(logs.path() + "/out");
  const int64_t copied = progress_rows(*watcher);
  EXPECT_GT(copied, 200);
  EXPECT_GT(target_scalar("SELECT COUNT(*) FROM store_migration_progress WHERE NOT done"),
            0);  // not finished

  // The rerun finishes: each table's rows once (primary keys would refuse a second copy, and
  // the counts and checksums are compared).
  CommandResult resumed = migrate({"--batch", "25"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("16 tables equal"), std::string::npos) << resumed.out;
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM messages"), 401);
  EXPECT_EQ(target_scalar("SELECT COUNT(DISTINCT seq) FROM messages"), 401);
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM deliveries"), 461);
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM idempotency_keys"), 401);
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM store_migration_progress WHERE NOT done"), 0);
  EXPECT_GT(target_scalar("SELECT finished_at FROM store_migration"), 0);
  auto pgb = open_store_backend(pg_location());
  EXPECT_EQ(read_back(*pgb, f), before);

  // Run again once finished: nothing more to copy, still equal.
  CommandResult again = migrate();
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.err.find("copied 0 row(s)"), std::string::npos) << again.err;
}

TEST_F(StoreMigrate, VerifyOnlyNamesTheTableAndTheFirstKeyThatDiffer) {
  Filled f = fill(sqlite_location(), 30);
  CommandResult r = migrate();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  CommandResult clean = migrate({"--verify-only"});
  ASSERT_EQ(clean.exit_code, 0) << clean.out << clean.err;
  EXPECT_NE(clean.out.find("verified: 16 tables equal"), std::string::npos) << clean.out;

  ASSERT_GT(f.dead_delivery, 0);
  const std::string id = std::to_string(f.dead_delivery);
  target_exec("UPDATE deliveries SET state = 'delivered' WHERE id = " + id);
  CommandResult changed = migrate({"--verify-only"});
  EXPECT_EQ(changed.exit_code, 2) << changed.out << changed.err;
  EXPECT_NE(changed.err.find("table deliveries differs: id=" + id + ": the row differs"),
            std::string::npos)
      << changed.err;
  EXPECT_TRUE(std::regex_search(changed.out, std::regex("deliveries +[0-9]+ +[0-9]+ +[0-9a-f]{16} "
                                                        "+DIFFERENT at id=" +
                                                        id)))
      << changed.out;
  EXPECT_TRUE(std::regex_search(changed.out, std::regex("messages +31 +31 +[0-9a-f]{16} +equal")))
      << changed.out;

  // A row missing in the target, and one only there.
  target_exec("UPDATE deliveries SET state = 'dead' WHERE id = " + id);
  target_exec("DELETE FROM xrefs WHERE key = 'rdv:2'");
  target_exec(
      "INSERT INTO sms_optouts(number_hash, created_at, source, keyword) VALUES ('zz', 1, 'x', "
      "'STOP')");
  CommandResult missing = migrate({"--verify-only"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.out.find("DIFFERENT at destination=calendar, key=rdv:2: missing in the target"),
            std::string::npos)
      << missing.out;
  EXPECT_NE(missing.out.find("DIFFERENT at number_hash=zz: in the target only"), std::string::npos)
      << missing.out;
  EXPECT_EQ(missing.out.find("deliveries DIFFERENT"), std::string::npos);
}

TEST_F(StoreMigrate, RefusesATargetWithOtherDataAndAStoreARelaisHolds) {
  fill(sqlite_location(), 10);
  // A relais serves the SQLite store: its lock.
  {
    auto lock = StoreLock::exclusive(sqlite_, std::chrono::seconds(1));
    CommandResult held = migrate();
    EXPECT_EQ(held.exit_code, 1);
    EXPECT_NE(held.err.find("relais is running on " + sqlite_), std::string::npos) << held.err;
  }
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'messages'"), 0);

  // A relais on the target (it holds the dispatch lock).
  {
    auto pgb = open_store_backend(pg_location());
    std::string why;
    ASSERT_TRUE(pgb->hold_dispatch(why)) << why;
    CommandResult running = migrate();
    EXPECT_EQ(running.exit_code, 1);
    EXPECT_NE(running.err.find("a relais runs on the target"), std::string::npos) << running.err;
  }

  // A database where relais already wrote: not the migration's data.
  {
    auto pgb = open_store_backend(pg_location());
    StoreOptions so;
    so.read_pool = 1;
    auto store = pgb->open_messages(so);
    store->close();
    auto xrefs = pgb->open_xrefs(SystemClock::instance(), StoreAccess::ReadWrite);
    xrefs->put(CrossReference{"calendar", "rdv:9", "X", "", 0, "m"});
  }
  CommandResult other = migrate();
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("already holds data (table xrefs) that did not come from a migration"),
            std::string::npos)
      << other.err;
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM messages"), 0);

  // Another store's migration in the target.
  target_exec("DELETE FROM xrefs");
  ASSERT_EQ(migrate().exit_code, 0);
  const std::string first = sqlite_;
  sqlite_ = dir_.path() + "/other.db";
  fill(sqlite_location(), 3);
  CommandResult second = migrate();
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("holds a migration from another store (" + first + ")"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM messages"), 11);

  // A store with a table or a column this relais does not know of: refused before anything is
  // copied (a later migration not added to the migrated tables would be left behind).
  ASSERT_EQ(run_command({"/usr/bin/sqlite3", sqlite_, "ALTER TABLE xrefs ADD COLUMN extra TEXT"})
                .exit_code,
            0);
  CommandResult column = migrate();
  EXPECT_EQ(column.exit_code, 1);
  EXPECT_NE(column.err.find("the columns of table xrefs are not the ones this relais migrates"),
            std::string::npos)
      << column.err;
  ASSERT_EQ(run_command({"/usr/bin/sqlite3", sqlite_,
                         "ALTER TABLE xrefs DROP COLUMN extra; CREATE TABLE later (id INTEGER)"})
                .exit_code,
            0);
  CommandResult table = migrate();
  EXPECT_EQ(table.exit_code, 1);
  EXPECT_NE(table.err.find("has a table this relais does not migrate: later"), std::string::npos)
      << table.err;

  // A password in the URI: refused (it would show in the process list).
  CommandResult pw = run_command({RELAIS_BINARY, "store", "migrate", "--from", "sqlite:" + first,
                                  "--to", "postgresql:" + uri_ + " password=secret"});
  EXPECT_EQ(pw.exit_code, 1);
  EXPECT_NE(pw.err.find("--password-env"), std::string::npos) << pw.err;
  EXPECT_EQ(pw.err.find("secret"), std::string::npos) << pw.err;
}

// The rate of the copy on a store of 100,000 messages (docs/operations.md quotes it).
TEST_F(StoreMigrate, MeasuresTheRateOnAHundredThousandMessages) {
  const auto t0 = std::chrono::steady_clock::now();
  fill(sqlite_location(), 100000);
  const double filled =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto t1 = std::chrono::steady_clock::now();
  CommandResult r = migrate({}, std::chrono::seconds(900));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(target_scalar("SELECT COUNT(*) FROM messages"), 100001);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.err, m, std::regex("copied [0-9,]+ row\\(s\\) in [0-9:]+ \\(([0-9,]+) rows/s\\)")))
      << r.err;
  std::cout << "[ figure ] filled in " << filled << " s; migrate (copy + verify) " << took
            << " s; copy " << m[1] << " rows/s\n"
            << r.out << r.err;
}

}  // namespace
}  // namespace relais::testing
