// The `database` polling source against a real PostgreSQL, a real MariaDB and SQLite, called as
// the hub calls it (poll, then committed with the outcome of the commit; the checkpoint kept by
// the test as the hub keeps it in its store): watermark with equal timestamps, outbox with
// mark_done, restart from a checkpoint, a crash between the commit and mark_done, nested
// columns, NULLs and types, a database stopped then restarted, bad queries.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <map>

#include <nlohmann/json.hpp>

#include "connectors/database/db_session.h"
#include "tests/database/test_databases.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

using nlohmann::json;

// What the hub would have done with a batch: every record taken (202), then committed().
struct Harness {
  std::unique_ptr<Poller> poller;
  std::string checkpoint;  // as the hub's store holds it
  std::vector<json> messages;
  std::vector<std::string> refused;

  // One poll and its commit; returns the poll's status.
  Status step(bool commit = true, bool call_committed = true) {
    PollBatch batch;
    Status s = poller->poll(checkpoint, batch);
    if (!s.ok) return s;
    std::vector<PolledOutcome> outcomes;
    for (const auto& r : batch.records) {
      PolledOutcome o;
      if (!r.unreadable.empty()) {
        o.status = 422;
        if (commit) refused.push_back(r.unreadable);
      } else if (commit) {
        messages.push_back(json::parse(r.body));
      }
      outcomes.push_back(o);
    }
    if (commit && !batch.records.empty()) checkpoint = batch.checkpoint;
    if (call_committed) {
      Status c = poller->committed(batch, commit, outcomes);
      if (!c.ok) return c;
    }
    last_more = batch.more;
    return Status::success();
  }
  // Polls until a poll brings nothing new (at most `max` polls).
  void drain(int max = 50) {
    for (int i = 0; i < max; ++i) {
      size_t before = messages.size() + refused.size();
      Status s = step();
      ASSERT_TRUE(s.ok) << s.error << ": " << s.detail;
      if (messages.size() + refused.size() == before && !last_more) return;
    }
    FAIL() << "still polling after " << max << " polls";
  }
  bool last_more = false;
};

std::string unique_table(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "_" + std::to_string(::getpid()) + "_" + std::to_string(n.fetch_add(1));
}

class DatabasePollerTest : public ::testing::TestWithParam<std::string> {
 protected:
  TestDb& db() { return test_db(GetParam()); }

  // A demand table as CMS76 might have it.
  std::string create_demands() {
    std::string t = unique_table("demande");
    db().sql("CREATE TABLE " + t + " (id bigint PRIMARY KEY, date_modification " +
             db().timestamp_type() + " NOT NULL, numero varchar(20), statut varchar(20), nom " +
             "varchar(40), montant " + db().decimal_type() + ", urgent boolean);\n");
    return t;
  }

  std::string watermark_yaml(const std::string& table, int batch, const std::string& extra = "") {
    return "driver: " + db().driver() + "\nconnection: '" + db().connection() +
           "'\nmode: watermark\nquery: >-\n  SELECT id, date_modification, numero, statut FROM " +
           table +
           " WHERE (date_modification, id) > (:date_modification, :id)"
           " ORDER BY date_modification, id LIMIT :limit\n"
           "watermark: [date_modification, id]\nstart: ['1970-01-01 00:00:00', '0']\nbatch: " +
           std::to_string(batch) + "\n" + extra;
  }

  // `skip_marking`: the query skips the rows at or below the checkpoint (`AND id > :id`), which
  // the marker may still be marking; the poller then recovers the undone ones on its first poll.
  std::string outbox_yaml(const std::string& table, int batch, bool skip_marking = false) {
    return "driver: " + db().driver() + "\nconnection: '" + db().connection() +
           "'\nmode: outbox\nquery: SELECT id, payload FROM " + table + " WHERE traite_le IS NULL" +
           (skip_marking ? " AND id > :id" : "") + " ORDER BY id LIMIT :limit\nwatermark: [id]\n" +
           (skip_marking ? "start: ['0']\n" : "") + "body_column: payload\nmark_done: UPDATE " +
           table + " SET traite_le = " + db().now() +
           " WHERE id IN (:ids)\nbatch: " + std::to_string(batch) + "\n";
  }

  std::string create_outbox() {
    std::string t = unique_table("relais_outbox");
    db().sql("CREATE TABLE " + t + " (id bigint PRIMARY KEY, payload text NOT NULL, traite_le " +
             db().timestamp_type() + " NULL);\n");
    return t;
  }

  void insert_outbox(const std::string& t, int from, int to) {
    std::string s;
    for (int i = from; i <= to; ++i) {
      s += "INSERT INTO " + t + " (id, payload) VALUES (" + std::to_string(i) +
           ", '{\"type\":\"demande.modifiee\",\"id\":" + std::to_string(i) + "}');\n";
    }
    db().sql(s);
  }
  int count_done(const std::string& t) {
    return std::stoi(db().sql("SELECT count(*) FROM " + t + " WHERE traite_le IS NOT NULL;\n"));
  }
  // Rows are marked done by the poller's own thread after committed(): waits for `n`.
  bool done_becomes(const std::string& t, int n) {
    return wait_until([&] { return count_done(t) == n; }, std::chrono::seconds(10),
                      std::chrono::milliseconds(10));
  }
};

TEST_P(DatabasePollerTest, WatermarkWithEqualTimestampsSkipsAndRepeatsNothing) {
  std::string t = create_demands();
  // Seven rows share one timestamp (to the microsecond where the type keeps it), the batch is 3:
  // a batch boundary falls inside the equal timestamps.
  std::string ins;
  for (int i = 1; i <= 7; ++i) {
    ins += "INSERT INTO " + t + " (id, date_modification, numero, statut) VALUES (" +
           std::to_string(i) + ", '2026-12-07 09:10:11.250000', 'D-" + std::to_string(i) +
           "', 'depose');\n";
  }
  ins += "INSERT INTO " + t +
         " (id, date_modification, numero, statut) VALUES (8, '2026-12-07 09:10:11.750000', "
         "'D-8', 'depose');\n";
  db().sql(ins);
  Harness h{make_database_poller(watermark_yaml(t, 3))};
  h.drain();
  ASSERT_EQ(h.messages.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(h.messages[i]["id"], i + 1);

  // A row updated (newer timestamp) and a new row with the same timestamp as the last one read
  // but a greater id: both come, once.
  db().sql("UPDATE " + t +
           " SET statut = 'accordee', date_modification = '2026-12-07 10:00:00' WHERE id = 2;\n"
           "INSERT INTO " +
           t +
           " (id, date_modification, numero, statut) VALUES (9, '2026-12-07 09:10:11.750000', "
           "'D-9', 'depose');\n");
  h.drain();
  ASSERT_EQ(h.messages.size(), 10u);
  EXPECT_EQ(h.messages[8]["id"], 9);
  EXPECT_EQ(h.messages[9]["id"], 2);
  EXPECT_EQ(h.messages[9]["statut"], "accordee");
  // Nothing more.
  ASSERT_TRUE(h.step().ok);
  EXPECT_EQ(h.messages.size(), 10u);
}

TEST_P(DatabasePollerTest, RestartFromCheckpointReadsOnlyWhatCameAfter) {
  std::string t = create_demands();
  std::string ins;
  for (int i = 1; i <= 5; ++i) {
    ins += "INSERT INTO " + t + " (id, date_modification, numero) VALUES (" + std::to_string(i) +
           ", '2026-12-0" + std::to_string(i) + " 08:00:00', 'D-" + std::to_string(i) + "');\n";
  }
  db().sql(ins);
  Harness a{make_database_poller(watermark_yaml(t, 2))};
  ASSERT_TRUE(a.step().ok);
  ASSERT_EQ(a.messages.size(), 2u);
  EXPECT_TRUE(a.last_more);
  // A batch not stored (the hub's commit failed): the next poll starts from the old checkpoint.
  ASSERT_TRUE(a.step(/*commit=*/false).ok);
  EXPECT_EQ(a.messages.size(), 2u);

  // A new instance (relais restarted) with the checkpoint from the store.
  Harness b{make_database_poller(watermark_yaml(t, 2)), a.checkpoint};
  b.drain();
  ASSERT_EQ(b.messages.size(), 3u);
  EXPECT_EQ(b.messages[0]["id"], 3);
  EXPECT_EQ(b.messages[2]["id"], 5);
}

TEST_P(DatabasePollerTest, OutboxMarksRowsDoneAfterTheCommitOnly) {
  std::string t = create_outbox();
  insert_outbox(t, 1, 5);
  Harness h{make_database_poller(outbox_yaml(t, 3))};
  // Not stored: nothing is marked, the rows come again.
  ASSERT_TRUE(h.step(/*commit=*/false).ok);
  EXPECT_EQ(count_done(t), 0);
  ASSERT_TRUE(h.step().ok);
  ASSERT_EQ(h.messages.size(), 3u);
  EXPECT_EQ(h.messages[0], json::parse(R"({"type":"demande.modifiee","id":1})"));
  EXPECT_TRUE(done_becomes(t, 3)) << count_done(t);
  h.drain();
  ASSERT_EQ(h.messages.size(), 5u);
  EXPECT_TRUE(done_becomes(t, 5)) << count_done(t);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(h.messages[i]["id"], i + 1);
}

TEST_P(DatabasePollerTest, OutboxCrashBetweenCommitAndMarkDoneDuplicatesNothing) {
  for (bool skip_marking : {false, true}) {
    SCOPED_TRACE(skip_marking ? "query AND id > :id" : "query without the watermark");
    std::string t = create_outbox();
    insert_outbox(t, 1, 4);
    Harness h{make_database_poller(outbox_yaml(t, 10, skip_marking))};
    // Committed by the hub, then relais dies before committed(): no mark.
    ASSERT_TRUE(h.step(/*commit=*/true, /*call_committed=*/false).ok);
    ASSERT_EQ(h.messages.size(), 4u);
    EXPECT_EQ(count_done(t), 0);
    insert_outbox(t, 5, 6);

    // Restarted with the stored checkpoint: rows 1-4 are only marked done, 5-6 are messages.
    Harness again{make_database_poller(outbox_yaml(t, 10, skip_marking)), h.checkpoint};
    ASSERT_TRUE(again.step().ok);
    ASSERT_EQ(again.messages.size(), 2u);
    EXPECT_EQ(again.messages[0]["id"], 5);
    EXPECT_EQ(again.messages[1]["id"], 6);
    EXPECT_TRUE(done_becomes(t, 6)) << count_done(t);
    ASSERT_TRUE(again.step().ok);
    EXPECT_EQ(again.messages.size(), 2u);
  }
}

// Pipelining (core/poller.h): the hub polls the next batch from the checkpoint of a batch still
// being committed. Rows found again at or below that checkpoint must not be marked done in
// poll(): if that commit fails (or relais dies), they were never stored and must come again.
TEST_P(DatabasePollerTest, OutboxRowsBelowAnUnstoredCheckpointAreNotMarkedDone) {
  std::string t = create_outbox();
  insert_outbox(t, 1, 3);
  // The query without `AND id > :id`: the rows being committed are found again.
  auto poller = make_database_poller(outbox_yaml(t, 2));
  ASSERT_TRUE(poller->pipelined());
  PollBatch first, second;
  ASSERT_TRUE(poller->poll("", first).ok);
  ASSERT_EQ(first.records.size(), 2u);
  // Read while `first` commits, from its checkpoint (not stored).
  ASSERT_TRUE(poller->poll(first.checkpoint, second).ok);
  // The commit of `first` fails: neither batch is stored.
  ASSERT_TRUE(poller->committed(first, false, {}).ok);
  ASSERT_TRUE(poller->committed(second, false, {}).ok);
  EXPECT_EQ(count_done(t), 0);

  // Relais restarted with the stored checkpoint (none): every row comes, exactly once.
  Harness again{make_database_poller(outbox_yaml(t, 2))};
  again.drain();
  ASSERT_EQ(again.messages.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(again.messages[i]["id"], i + 1);
  EXPECT_TRUE(done_becomes(t, 3)) << count_done(t);
  ASSERT_TRUE(again.step().ok);
  EXPECT_EQ(again.messages.size(), 3u);
}

// The same reading, stored: the rows below the in-flight checkpoint are marked once the batch
// that found them is stored, and none comes twice.
TEST_P(DatabasePollerTest, OutboxPipelinedBatchesMarkEveryRowOnceStored) {
  std::string t = create_outbox();
  insert_outbox(t, 1, 5);
  auto poller = make_database_poller(outbox_yaml(t, 2));
  std::vector<int> ids;
  PollBatch in_flight;
  ASSERT_TRUE(poller->poll("", in_flight).ok);
  auto take = [&](const PollBatch& b) {
    for (const auto& r : b.records) ids.push_back(json::parse(r.body)["id"].get<int>());
    return poller->committed(b, true, std::vector<PolledOutcome>(b.records.size()));
  };
  // Each poll from the checkpoint of the batch in flight, then that batch told stored.
  for (int polls = 0; polls < 20 && (ids.size() < 5 || !in_flight.records.empty()); ++polls) {
    PollBatch next;
    ASSERT_TRUE(poller->poll(in_flight.checkpoint, next).ok);
    ASSERT_TRUE(take(in_flight).ok);
    in_flight = std::move(next);
  }
  ASSERT_TRUE(take(in_flight).ok);
  EXPECT_EQ(ids, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(done_becomes(t, 5)) << count_done(t);
}

TEST_P(DatabasePollerTest, RowBecomesNestedObjectWithNullsAndTypes) {
  std::string t = create_demands();
  db().sql("INSERT INTO " + t +
           " (id, date_modification, numero, statut, nom, montant, urgent) VALUES "
           "(1, '2026-07-01 14:30:00.500000', 'D-1', 'depose', NULL, 1234.50, true),"
           "(2, '2026-01-15 08:00:00', 'D-2', NULL, 'Dupont', -3, false);\n");
  std::string q = [&] {
    auto& d = db();
    return "SELECT id, date_modification, numero AS " + d.quote("demande.numero") + ", statut AS " +
           d.quote("demande.statut") + ", nom AS " + d.quote("demande.personne.nom") +
           ", montant, urgent FROM " + t +
           " WHERE (date_modification, id) > (:date_modification, :id) ORDER BY "
           "date_modification, id LIMIT :limit";
  }();
  std::string yaml = "driver: " + db().driver() + "\nconnection: '" + db().connection() +
                     "'\nquery: |-\n  " + q +
                     "\nwatermark: [date_modification, id]\n"
                     "start: ['1970-01-01 00:00:00', '0']\n";
  Harness h{make_database_poller(yaml)};
  h.drain();
  ASSERT_EQ(h.messages.size(), 2u);
  const json& winter = h.messages[0];
  SCOPED_TRACE(h.messages[0].dump() + "\n" + h.messages[1].dump());
  const json& summer = h.messages[1];
  EXPECT_EQ(winter["id"], 2);
  EXPECT_EQ(winter["demande"]["numero"], "D-2");
  EXPECT_TRUE(winter["demande"]["statut"].is_null());
  EXPECT_EQ(winter["demande"]["personne"]["nom"], "Dupont");
  EXPECT_TRUE(summer["demande"]["personne"]["nom"].is_null());
  EXPECT_TRUE(summer["montant"].is_number());
  EXPECT_DOUBLE_EQ(summer["montant"].get<double>(), 1234.5);
  EXPECT_DOUBLE_EQ(winter["montant"].get<double>(), -3);
  EXPECT_TRUE(summer["id"].is_number_integer());
  if (db().driver() == "sqlite") {
    // SQLite has no timestamp type: the text as stored (a declared BOOLEAN is read as one).
    EXPECT_EQ(summer["date_modification"], "2026-07-01 14:30:00.500000");
    EXPECT_EQ(summer["urgent"], true);
  } else {
    // A timestamp without zone: ISO-8601 with the offset of Europe/Paris at that date, the
    // fraction as the database writes it (PostgreSQL trims it, MariaDB gives the column's).
    bool pg = db().driver() == "postgresql";
    EXPECT_EQ(summer["date_modification"],
              pg ? "2026-07-01T14:30:00.5+02:00" : "2026-07-01T14:30:00.500000+02:00");
    EXPECT_EQ(winter["date_modification"],
              pg ? "2026-01-15T08:00:00+01:00" : "2026-01-15T08:00:00.000000+01:00");
    if (db().driver() == "postgresql") {
      EXPECT_EQ(summer["urgent"], true);
    } else {
      EXPECT_EQ(summer["urgent"], 1);  // MariaDB's BOOLEAN is TINYINT(1)
    }
  }
  // The position names the watermark, not the data.
  PollBatch b;
  auto p = make_database_poller(yaml);
  ASSERT_TRUE(p->poll("", b).ok);
  ASSERT_EQ(b.records.size(), 2u);
  EXPECT_EQ(b.records[0].position.find("id 2") != std::string::npos, true) << b.records[0].position;
}

TEST_P(DatabasePollerTest, BadQueriesAreReadableErrors) {
  std::string t = create_demands();
  // At start-up (check-config): a parameter that is not :limit nor a watermark column, a
  // missing :limit, an outbox without mark_done.
  std::string base = "driver: " + db().driver() + "\nconnection: 'x'\nwatermark: [id]\n";
  std::string e1 = database_poller_errors(base + "start: ['0']\nquery: SELECT id FROM " + t +
                                          " WHERE id > :idd LIMIT :limit\n");
  EXPECT_NE(e1.find(":idd is neither :limit nor a watermark column"), std::string::npos) << e1;
  std::string e2 = database_poller_errors(base + "start: ['0']\nquery: SELECT id FROM " + t +
                                          " WHERE id > :id\n");
  EXPECT_NE(e2.find("must use :limit"), std::string::npos) << e2;
  std::string e3 =
      database_poller_errors(base + "mode: outbox\nquery: SELECT id FROM " + t + " LIMIT :limit\n");
  EXPECT_NE(e3.find("mark_done"), std::string::npos) << e3;
  std::string e5 =
      database_poller_errors(base + "mode: outbox\nquery: SELECT id FROM " + t +
                             "\nmark_done: DELETE FROM " + t + " WHERE id IN (:ids)\n");
  EXPECT_NE(e5.find("must use :limit"), std::string::npos) << e5;
  std::string e4 = database_poller_errors(base + "query: SELECT id FROM " + t +
                                          " WHERE id > :id LIMIT :limit\n");
  EXPECT_NE(e4.find("start"), std::string::npos) << e4;

  // At poll time: a column that does not exist; the failure says so, the poller goes on.
  auto p = make_database_poller("driver: " + db().driver() + "\nconnection: '" + db().connection() +
                                "'\nwatermark: [id]\nstart: ['0']\n" +
                                "query: SELECT id, colonne_absente FROM " + t +
                                " WHERE id > :id ORDER BY id LIMIT :limit\n");
  PollBatch b;
  Status s = p->poll("", b);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "requête refusée par la base");
  EXPECT_NE(s.detail.find("colonne_absente"), std::string::npos) << s.detail;
  EXPECT_FALSE(p->poll("", b).ok);  // and again, without crashing

  // The watermark column missing from the result.
  auto q =
      make_database_poller("driver: " + db().driver() + "\nconnection: '" + db().connection() +
                           "'\nwatermark: [id]\nstart: ['0']\n" + "query: SELECT numero FROM " + t +
                           " WHERE id > :id ORDER BY id LIMIT :limit\n");
  s = q->poll("", b);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.detail.find("no column id"), std::string::npos) << s.detail;
}

TEST_P(DatabasePollerTest, UnorderedQueryIsRefusedNotSkipped) {
  std::string t = create_demands();
  db().sql("INSERT INTO " + t +
           " (id, date_modification) VALUES (1, '2026-12-01 08:00:00'), (2, '2026-12-02 "
           "08:00:00');\n");
  auto p = make_database_poller("driver: " + db().driver() + "\nconnection: '" + db().connection() +
                                "'\nwatermark: [id]\nstart: ['0']\n" + "query: SELECT id FROM " +
                                t + " WHERE id > :id ORDER BY id DESC LIMIT :limit\n");
  PollBatch b;
  Status s = p->poll("", b);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "requête mal ordonnée");
}

INSTANTIATE_TEST_SUITE_P(Databases, DatabasePollerTest,
                         ::testing::Values("postgresql", "mysql", "sqlite"),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------------------------
// A server taken down and brought back (PostgreSQL and MariaDB).

class DatabaseDownTest : public DatabasePollerTest {};

TEST_P(DatabaseDownTest, StoppedDatabaseIsReadableFailureThenPollingResumes) {
  std::string t = create_outbox();
  insert_outbox(t, 1, 2);
  Harness h{make_database_poller(outbox_yaml(t, 10))};
  ASSERT_TRUE(h.step().ok);
  ASSERT_EQ(h.messages.size(), 2u);
  ASSERT_TRUE(done_becomes(t, 2));  // marked before the database goes

  db().stop();
  PollBatch b;
  Status s = h.poller->poll(h.checkpoint, b);
  db().start();  // before any assertion can return
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.http_status, 503) << s.detail;
  EXPECT_EQ(s.error, "base de données injoignable");
  EXPECT_FALSE(s.detail.empty());
  EXPECT_EQ(s.detail.find(db().password()), std::string::npos) << s.detail;
  EXPECT_TRUE(b.records.empty());
  // probe() says the same while down? It is up again now: probe succeeds.
  EXPECT_TRUE(h.poller->probe().ok);

  // The same poller reconnects on its next poll.
  insert_outbox(t, 3, 4);
  ASSERT_TRUE(h.step().ok) << "after the restart";
  ASSERT_EQ(h.messages.size(), 4u);
  EXPECT_EQ(h.messages[2]["id"], 3);
  EXPECT_TRUE(done_becomes(t, 4)) << count_done(t);
}

// A server that accepts the TCP connection and never says a word: the poll fails within the
// configured times (connect_timeout, and for MariaDB's handshake the client's read timeout,
// query_timeout + 10 s), it does not hang the source's thread.
TEST_P(DatabaseDownTest, SilentServerIsAFailureWithinTheTimeouts) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  std::string port = std::to_string(ntohs(a.sin_port));
  std::string conn = db().driver() == "postgresql"
                         ? "host=127.0.0.1 port=" + port + " dbname=x user=x password=x"
                         : "host=127.0.0.1;port=" + port + ";db=x;user=x;password=x";
  auto p =
      make_database_poller("driver: " + db().driver() + "\nconnection: '" + conn +
                           "'\nconnect_timeout: 1s\nquery_timeout: 1s\nwatermark: [id]\n"
                           "start: ['0']\nquery: SELECT id FROM t WHERE id > :id LIMIT :limit\n");
  auto t0 = std::chrono::steady_clock::now();
  PollBatch b;
  Status s = p->poll("", b);
  auto took = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "base de données injoignable") << s.detail;
  // libpq's smallest connect_timeout is 2 s; MariaDB's handshake read: 1 s + 10 s.
  EXPECT_LT(took, std::chrono::seconds(db().driver() == "postgresql" ? 5 : 14));
}

// The rights docs/connectors/cms76.md asks for are enough: SELECT on the outbox and UPDATE of
// its done column only.
TEST_P(DatabaseDownTest, ReadOnlyRoleWithUpdateOfTheDoneColumnIsEnough) {
  std::string t = create_outbox();
  insert_outbox(t, 1, 3);
  std::string role = "relais_lecture_" + std::to_string(::getpid());
  std::string pw = "Lecture-Pw-0123456789";
  if (db().driver() == "postgresql") {
    db().admin_sql("CREATE ROLE " + role + " LOGIN PASSWORD '" + pw +
                   "';\nGRANT CONNECT ON DATABASE cms76 TO " + role +
                   ";\nGRANT USAGE ON SCHEMA public TO " + role + ";\nGRANT SELECT ON " + t +
                   " TO " + role + ";\nGRANT UPDATE (traite_le) ON " + t + " TO " + role + ";\n");
  } else {
    db().admin_sql("CREATE USER '" + role + "'@'127.0.0.1' IDENTIFIED BY '" + pw +
                   "';\nGRANT SELECT, UPDATE (traite_le) ON cms76." + t + " TO '" + role +
                   "'@'127.0.0.1';\n");
  }
  std::string yaml = outbox_yaml(t, 10, /*skip_marking=*/true);
  yaml.replace(yaml.find(db().connection()), db().connection().size(),
               db().connection_as(role, pw));
  Harness h{make_database_poller(yaml)};
  ASSERT_TRUE(h.step().ok);
  ASSERT_EQ(h.messages.size(), 3u);
  EXPECT_TRUE(done_becomes(t, 3)) << count_done(t);
  ASSERT_TRUE(h.step().ok);  // reports a marking failure, if there was one
  // And that role can change nothing else.
  auto writer = make_database_poller(
      "driver: " + db().driver() + "\nconnection: '" + db().connection_as(role, pw) +
      "'\nmode: outbox\nquery: SELECT id, payload FROM " + t +
      " ORDER BY id LIMIT :limit\nwatermark: [id]\nmark_done: UPDATE " + t +
      " SET payload = 'x' WHERE id IN (:ids)\n");
  PollBatch b;
  ASSERT_TRUE(writer->poll("", b).ok);
  ASSERT_EQ(b.records.size(), 3u);
  writer->committed(b, true, {});
  Status later;
  ASSERT_TRUE(wait_until(
      [&] {
        later = writer->committed(PollBatch{}, true, {});
        return !later.ok;
      },
      std::chrono::seconds(10)));
  EXPECT_NE(later.detail.find("denied"), std::string::npos) << later.detail;
}

TEST_P(DatabaseDownTest, WrongPasswordNeverShowsIt) {
  std::string conn = db().connection();
  std::string pw = db().password();
  std::string wrong = "Wrong-" + pw;
  conn.replace(conn.find(pw), pw.size(), wrong);
  auto p = make_database_poller("driver: " + db().driver() + "\nconnection: '" + conn +
                                "'\nmode: outbox\nquery: SELECT 1 AS id LIMIT :limit\n"
                                "watermark: [id]\nmark_done: DELETE FROM x WHERE id IN (:ids)\n");
  PollBatch b;
  Status s = p->poll("", b);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "base de données injoignable");
  EXPECT_EQ(s.detail.find(wrong), std::string::npos) << s.detail;
  // The database's own words say why.
  EXPECT_TRUE(s.detail.find("password authentication failed") != std::string::npos ||
              s.detail.find("Access denied") != std::string::npos)
      << s.detail;
  Status pr = p->probe();
  EXPECT_FALSE(pr.ok);
  EXPECT_EQ(pr.detail.find(wrong), std::string::npos) << pr.detail;
}

TEST_P(DatabaseDownTest, ValuesQuotedInErrorsAreMasked) {
  std::string t = create_demands();
  db().sql("INSERT INTO " + t +
           " (id, date_modification, nom) VALUES (1, '2026-12-01 08:00:00', 'Dupont-Secret');\n");
  // A cast of personal data that fails: the database quotes the value; the error must not.
  std::string cast =
      db().driver() == "postgresql" ? "CAST(nom AS integer)" : "JSON_EXTRACT(nom, '$.a')";
  auto p = make_database_poller("driver: " + db().driver() + "\nconnection: '" + db().connection() +
                                "'\nwatermark: [id]\nstart: ['0']\n" + "query: SELECT id, " + cast +
                                " AS n FROM " + t + " WHERE id > :id ORDER BY id LIMIT :limit\n");
  PollBatch b;
  Status s = p->poll("", b);
  if (db().driver() == "postgresql") {
    ASSERT_FALSE(s.ok);
  }
  EXPECT_EQ(s.detail.find("Dupont"), std::string::npos) << s.detail;
  for (const auto& r : b.records) EXPECT_EQ(r.unreadable.find("Dupont"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Servers, DatabaseDownTest, ::testing::Values("postgresql", "mysql"),
                         [](const auto& info) { return info.param; });

// Polls the one row of `table` (SELECT *) as a message body.
void poll_one_row(TestDb& db, const std::string& table, json& out) {
  auto p = make_database_poller("driver: " + db.driver() + "\nconnection: '" + db.connection() +
                                "'\nwatermark: [id]\nstart: ['0']\nquery: SELECT * FROM " + table +
                                " WHERE id > :id ORDER BY id LIMIT :limit\n");
  PollBatch b;
  Status s = p->poll("", b);
  ASSERT_TRUE(s.ok) << s.error << ": " << s.detail;
  ASSERT_EQ(b.records.size(), 1u);
  out = json::parse(b.records[0].body);
}

// The column types an outbox or a CMS76 table may have, each as exactly as the server gives it
// (Poco 1.11's MySQL connector crashed the process on LONGTEXT and JSON, refused TIMESTAMP).
TEST(DatabaseTypes, MariaDbLongTextJsonTimestampDecimal) {
  TestDb& db = test_db("mysql");
  std::string t = unique_table("types");
  db.sql("CREATE TABLE " + t +
         " (id bigint PRIMARY KEY, lt longtext, js json, ts timestamp(3) NULL, dt datetime, "
         "d decimal(20,4), u bigint unsigned, b blob, bo boolean);\n"
         "SET time_zone = '+01:00';\nINSERT INTO " +
         t +
         " VALUES (1, REPEAT('é', 70000), '{\"a\":[1,2]}', '2026-12-07 09:10:11.250', "
         "'2026-12-07 09:10:11', 12345678901234.5678, 18446744073709551615, x'00ff', true);\n");
  json j;
  ASSERT_NO_FATAL_FAILURE(poll_one_row(db, t, j));
  EXPECT_EQ(j["lt"].get<std::string>().size(), 140000u);  // 70,000 × 2 bytes of UTF-8
  EXPECT_EQ(j["js"], R"({"a":[1,2]})");                   // MariaDB's JSON is a LONGTEXT: its text
  EXPECT_EQ(j["ts"], "2026-12-07T08:10:11.250+00:00");    // an instant, written at +01:00
  EXPECT_EQ(j["dt"], "2026-12-07T09:10:11+01:00");
  EXPECT_DOUBLE_EQ(j["d"].get<double>(), 12345678901234.5678);
  EXPECT_EQ(j["u"].get<uint64_t>(), 18446744073709551615ull);
  EXPECT_EQ(j["b"], "AP8=");  // binary, not UTF-8: base64
  EXPECT_EQ(j["bo"], 1);

  // A TIMESTAMP as watermark: bound back exactly as read, the row is not read again.
  auto p = make_database_poller("driver: mysql\nconnection: '" + db.connection() +
                                "'\nwatermark: [ts, id]\nstart: ['1970-01-01 00:00:01', '0']\n"
                                "query: SELECT id, ts FROM " +
                                t + " WHERE (ts, id) > (:ts, :id) ORDER BY ts, id LIMIT :limit\n");
  PollBatch first, again;
  ASSERT_TRUE(p->poll("", first).ok);
  ASSERT_EQ(first.records.size(), 1u);
  Status s = p->poll(first.checkpoint, again);
  ASSERT_TRUE(s.ok) << s.detail;
  EXPECT_TRUE(again.records.empty()) << first.checkpoint;
}

TEST(DatabaseTypes, PostgresJsonTimestampTzNumericUuid) {
  TestDb& db = test_db("postgresql");
  std::string t = unique_table("types");
  db.sql("CREATE TABLE " + t +
         " (id bigint PRIMARY KEY, js jsonb, tz timestamptz, n numeric(30,6), u uuid, b bytea, "
         "arr int[]);\nINSERT INTO " +
         t +
         " VALUES (1, '{\"a\": [1, 2]}', '2026-12-07 09:10:11.123456+01', 12345678901.123456, "
         "'123e4567-e89b-12d3-a456-426614174000', '\\x00ff', '{1,2}');\n");
  json j;
  ASSERT_NO_FATAL_FAILURE(poll_one_row(db, t, j));
  EXPECT_EQ(j["js"], json::parse(R"({"a":[1,2]})"));
  EXPECT_EQ(j["tz"], "2026-12-07T08:10:11.123456+00:00");
  EXPECT_DOUBLE_EQ(j["n"].get<double>(), 12345678901.123456);
  EXPECT_EQ(j["u"], "123e4567-e89b-12d3-a456-426614174000");
  EXPECT_EQ(j["b"], "AP8=");
  EXPECT_EQ(j["arr"], "{1,2}");  // other types: PostgreSQL's text
}

TEST(SqlTemplate, NamedParametersOutsideLiteralsCommentsAndCasts) {
  db::SqlTemplate t;
  std::string err;
  ASSERT_TRUE(db::SqlTemplate::parse(
      "SELECT a::text, ':not' AS \":no\", x -- :comment\n FROM t /* :c */ WHERE (d, id) > "
      "(:d, :id) AND e = :d LIMIT :limit",
      t, err))
      << err;
  EXPECT_EQ(t.names(), (std::vector<std::string>{"d", "id", "d", "limit"}));
  EXPECT_FALSE(db::SqlTemplate::parse("SELECT 'open", t, err));
  EXPECT_FALSE(db::SqlTemplate::parse("SELECT /* open", t, err));
}

TEST(MaskErrorText, KeepsTheQuerysOwnNamesMasksValuesAndPassword) {
  std::string q = "SELECT \"colonne_absente\" FROM demande";
  EXPECT_EQ(
      db::mask_error_text("ERROR:  column \"colonne_absente\" does not exist\nLINE 1", "pw", {q}),
      "ERROR:  column \"colonne_absente\" does not exist");
  EXPECT_EQ(db::mask_error_text("invalid input syntax for type integer: \"Dupont\"", "", {q}),
            "invalid input syntax for type integer: \"«…»\"");
  EXPECT_EQ(db::mask_error_text("auth failed with s3cret-pw", "s3cret-pw", {}),
            "auth failed with «…»");
  EXPECT_EQ(db::mask_error_text("Can't connect to server on '127.0.0.1' (115)", "", {}),
            "Can't connect to server on '«…»' (115)");
}

}  // namespace
}  // namespace relais::testing
