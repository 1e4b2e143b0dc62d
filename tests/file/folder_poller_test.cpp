// The watched folder (connectors/file/folder_poller.h) over a real temporary folder, driven the
// way the hub drives a polling source: poll, commit the records and the checkpoint together
// (here: an idempotency set standing for the store), committed(). Good, bad, half-written,
// duplicate and huge files; a crash mid-file, between a commit and its report, and during the
// final move.

#include "connectors/file/folder_poller.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "tests/support/relais_process.h"

namespace relais::file {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using relais::testing::read_file;

void put(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// A transport over the local one that counts what is read and can fail a move once.
class CountingTransport final : public FileTransport {
 public:
  explicit CountingTransport(FileTransport* inner) : inner_(inner) {}
  Status list(const std::string& d, std::vector<FileEntry>& o) override {
    return inner_->list(d, o);
  }
  Status read(const std::string& p, int64_t off, size_t max, std::string& o) override {
    if (!unreadable_name.empty() && p.size() >= unreadable_name.size() &&
        p.compare(p.size() - unreadable_name.size(), unreadable_name.size(), unreadable_name) ==
            0) {
      return Status::failure(503, "fichier illisible", p + " : Permission denied");
    }
    max_request = std::max(max_request, max);
    Status s = inner_->read(p, off, max, o);
    bytes_read += o.size();
    return s;
  }
  Status move(const std::string& f, const std::string& t) override {
    if (fail_moves > 0) {
      --fail_moves;
      return Status::failure(503, "déplacement impossible", "panne simulée");
    }
    return inner_->move(f, t);
  }
  Status write(const std::string& p, const std::string& d, bool a) override {
    return inner_->write(p, d, a);
  }
  Status remove(const std::string& p) override { return inner_->remove(p); }
  Status make_dir(const std::string& d) override { return inner_->make_dir(d); }

  FileTransport* inner_;
  size_t max_request = 0;
  uint64_t bytes_read = 0;
  int fail_moves = 0;
  std::string unreadable_name;  // reads of a path ending so fail (a file without read rights)
};

// The hub's side, reduced to what matters here: the idempotency keys already stored, the
// checkpoint committed with them, the bodies accepted.
struct FakeHub {
  std::set<std::string> keys;
  std::string checkpoint;
  std::vector<std::string> bodies;     // accepted (202), in order
  std::map<std::string, int> offered;  // idempotency key → times committed
  size_t largest_batch = 0;
  size_t polls = 0;

  // One poll; when `store`, the batch is committed (records + checkpoint); committed() is
  // called unless `crash_before_report` (relais killed right after the commit).
  Status step(Poller& p, size_t& records, bool store = true, bool crash_before_report = false) {
    PollBatch batch;
    ++polls;
    Status s = p.poll(checkpoint, batch);
    records = batch.records.size();
    if (!s.ok || batch.records.empty()) return s;
    largest_batch = std::max(largest_batch, batch.records.size());
    std::vector<PolledOutcome> outcomes;
    for (const auto& r : batch.records) {
      PolledOutcome o;
      if (!r.unreadable.empty()) {
        o.status = 422;
        o.error = "illisible";
      } else if (keys.insert(r.idempotency_key).second) {
        o.status = 202;
        o.id = "M" + std::to_string(keys.size());
      } else {
        o.status = 200;
        o.id = "M-dup";
      }
      outcomes.push_back(o);
    }
    if (!store) {
      for (const auto& r : batch.records) keys.erase(r.idempotency_key);  // rolled back
      return p.committed(batch, false, {});
    }
    for (size_t i = 0; i < batch.records.size(); ++i) {
      ++offered[batch.records[i].idempotency_key];
      if (outcomes[i].status == 202) bodies.push_back(batch.records[i].body);
    }
    checkpoint = batch.checkpoint;
    if (crash_before_report) return Status::success();
    return p.committed(batch, true, outcomes);
  }

  // Polls until a poll returns nothing (at most `max` polls).
  void drain(Poller& p, size_t max = 1000000) {
    for (size_t i = 0; i < max; ++i) {
      size_t n = 0;
      Status s = step(p, n);
      ASSERT_TRUE(s.ok) << s.error << " — " << s.detail;
      if (n == 0) return;
    }
    FAIL() << "still reading after " << max << " polls";
  }
};

class FolderPollerTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directory(dir_); }

  // A poller over dir_ with the `poll:` keys given in YAML (path added).
  std::unique_ptr<FolderPoller> poller(const std::string& yaml,
                                       FileTransport* transport = nullptr) {
    YAML::Node node = YAML::Load("path: " + dir_.string() + "\n" + yaml);
    std::vector<ConfigError> errors;
    EXPECT_TRUE(validate(node, {&folder_poller_spec()}, "sources.s.poll", "t.yaml", errors))
        << (errors.empty() ? "" : errors[0].to_string());
    ConfigView view(node, {&folder_poller_spec()}, "sources.s.poll");
    std::unique_ptr<FileTransport> t =
        transport ? std::unique_ptr<FileTransport>(new CountingTransport(transport))
                  : local_transport();
    if (transport) counting_ = static_cast<CountingTransport*>(t.get());
    return std::make_unique<FolderPoller>(folder_settings(view, "/"), std::move(t), &clock_);
  }

  std::vector<std::string> names_in(const fs::path& d) {
    std::vector<std::string> out;
    if (!fs::exists(d)) return out;
    for (const auto& e : fs::directory_iterator(d)) {
      if (e.is_regular_file()) out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  relais::testing::TempDir root_{"relais-folder-"};  // removed with the test
  fs::path dir_ = fs::path(root_.path()) / "exports";
  ManualClock clock_{1'700'000'000'000};
  CountingTransport* counting_ = nullptr;
};

const char* kCsv =
    "settle: 0s\n"
    "pattern: '*.csv'\n"
    "columns: {'N° demande': demande.numero, Identifiant: individu.id, Montant: aide.montant}\n"
    "constants: {event: genesis.aide.accordee}\n"
    "required: [individu.id]\n";

// An export of `lines` records under kCsv's header: demande i, individu 500000 + i.
std::string numbered_csv(int lines) {
  std::string text = "N° demande;Identifiant;Montant\n";
  for (int i = 0; i < lines; ++i) {
    text +=
        std::to_string(i) + ";" + std::to_string(500000 + i) + ";" + std::to_string(i % 97) + "\n";
  }
  return text;
}

TEST_F(FolderPollerTest, GoodFileBecomesMessagesThenDoneWithItsReport) {
  put(dir_ / "aides.csv", "N° demande;Identifiant;Montant\n547;58123;120\n548;58124;80\n");
  auto p = poller(kCsv);
  FakeHub hub;
  hub.drain(*p);
  ASSERT_EQ(hub.bodies.size(), 2u);
  EXPECT_EQ(json::parse(hub.bodies[0]), json::parse(R"({"event":"genesis.aide.accordee",
      "demande":{"numero":"547"},"individu":{"id":"58123"},"aide":{"montant":"120"}})"));
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{});
  EXPECT_EQ(names_in(dir_ / "done"),
            (std::vector<std::string>{"aides.csv", "aides.csv.rapport.csv"}));
  auto report = lines_of(read_file(dir_ / "done" / "aides.csv.rapport.csv"));
  ASSERT_EQ(report.size(), 3u);
  EXPECT_EQ(report[0], "ligne;statut;résultat;message;motif");
  EXPECT_EQ(report[1], "2;202;accepté;M1;");
  EXPECT_EQ(report[2], "3;202;accepté;M2;");
  // The idempotency key: the file's SHA-256 and the line.
  EXPECT_EQ(hub.offered.begin()->first.size(), 64u + 2u);
  EXPECT_NE(hub.checkpoint.find("end 1"), std::string::npos);
}

TEST_F(FolderPollerTest, BadLineAmongGoodOnesIsReportedAndTheFileGoesToError) {
  put(dir_ / "aides.csv",
      "N° demande;Identifiant;Montant\n547;58123;120\n548;Durand Jean\n549;;10\n550;58126;5\n");
  auto p = poller(kCsv);
  FakeHub hub;
  hub.drain(*p);
  EXPECT_EQ(hub.bodies.size(), 2u);  // lines 2 and 5
  EXPECT_EQ(names_in(dir_ / "error"),
            (std::vector<std::string>{"aides.csv", "aides.csv.rapport.csv"}));
  EXPECT_FALSE(fs::exists(dir_ / "done" / "aides.csv"));
  std::string report = read_file(dir_ / "error" / "aides.csv.rapport.csv");
  auto rows = lines_of(report);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[2], "3;422;illisible;;nombre de champs incorrect : 2 au lieu de 3");
  EXPECT_EQ(rows[3], "4;422;illisible;;champ obligatoire absent : individu.id");
  EXPECT_EQ(rows[4], "5;202;accepté;M2;");
  EXPECT_EQ(report.find("Durand"), std::string::npos);  // never the line's content
}

TEST_F(FolderPollerTest, HalfWrittenFileWaitsUntilSettledAndPartFilesAreNeverRead) {
  auto p = poller("settle: 2s\npattern: '*.csv'\n");
  FakeHub hub;
  put(dir_ / "lent.csv", "a;b\n1;2\n");
  put(dir_ / "envoi.csv.part", "a;b\n1;2\n");
  put(dir_ / "envoi.tmp", "a;b\n1;2\n");
  put(dir_ / ".cache.csv", "a;b\n1;2\n");
  size_t n = 0;
  ASSERT_TRUE(hub.step(*p, n).ok);
  EXPECT_EQ(n, 0u);  // first seen now
  clock_.advance(1500);
  {  // still being written: the size changes
    std::ofstream out(dir_ / "lent.csv", std::ios::app);
    out << "3;4\n";
  }
  ASSERT_TRUE(hub.step(*p, n).ok);
  EXPECT_EQ(n, 0u);
  clock_.advance(1500);  // 3 s since first seen, 1.5 s since it last changed
  ASSERT_TRUE(hub.step(*p, n).ok);
  EXPECT_EQ(n, 0u);
  clock_.advance(600);
  ASSERT_TRUE(hub.step(*p, n).ok);
  EXPECT_EQ(n, 2u);  // the whole file, the line added included
  clock_.advance(60000);
  hub.drain(*p);
  EXPECT_EQ(hub.bodies.size(), 2u);
  EXPECT_EQ(names_in(dir_),
            (std::vector<std::string>{".cache.csv", "envoi.csv.part", "envoi.tmp"}));
  EXPECT_TRUE(fs::exists(dir_ / "done" / "lent.csv"));
}

TEST_F(FolderPollerTest, SameFileDroppedAgainIsAllDuplicatesAndReportedSo) {
  const std::string text = "N° demande;Identifiant;Montant\n547;58123;120\n548;58124;80\n";
  put(dir_ / "aides.csv", text);
  auto p = poller(kCsv);
  FakeHub hub;
  hub.drain(*p);
  put(dir_ / "aides.csv", text);
  hub.drain(*p);
  EXPECT_EQ(hub.bodies.size(), 2u);  // nothing new accepted
  EXPECT_EQ(names_in(dir_ / "done"),
            (std::vector<std::string>{"aides-2.csv", "aides-2.csv.rapport.csv", "aides.csv",
                                      "aides.csv.rapport.csv"}));
  auto rows = lines_of(read_file(dir_ / "done" / "aides-2.csv.rapport.csv"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1], "2;200;déjà reçu (fichier déjà lu);M-dup;");
  EXPECT_EQ(rows[2], "3;200;déjà reçu (fichier déjà lu);M-dup;");
}

TEST_F(FolderPollerTest, HugeFileIsReadInBoundedBatchesAndChunks) {
  const std::string text = numbered_csv(100000);
  put(dir_ / "gros.csv", text);
  auto local = local_transport();
  auto p = poller(std::string(kCsv) + "batch: 1000\n", local.get());
  FakeHub hub;
  hub.drain(*p);
  EXPECT_EQ(hub.bodies.size(), 100000u);
  EXPECT_EQ(hub.largest_batch, 1000u);
  EXPECT_EQ(hub.polls, 101u);  // 100 batches, then nothing
  for (const auto& [key, times] : hub.offered) ASSERT_EQ(times, 1) << key;
  // Never the whole file at once: reads of at most 1 MiB (the hash) and 64 KiB (records). The
  // file is read twice (hash, records) plus at most one chunk read ahead per batch, and its
  // report once (done or error?) — never again from its start at each batch.
  EXPECT_LE(counting_->max_request, size_t(1) << 20);
  uint64_t report = fs::file_size(dir_ / "done" / "gros.csv.rapport.csv");
  EXPECT_LT(counting_->bytes_read, 2 * text.size() + 101 * 64 * 1024 + report);
  auto rows = lines_of(read_file(dir_ / "done" / "gros.csv.rapport.csv"));
  ASSERT_EQ(rows.size(), 100001u);
  EXPECT_EQ(rows.back().substr(0, 11), "100001;202;");
}

TEST_F(FolderPollerTest, CrashMidFileResumesFromTheCommittedCheckpoint) {
  put(dir_ / "aides.csv", numbered_csv(2500));
  const std::string yaml = std::string(kCsv) + "batch: 1000\n";
  FakeHub hub;
  {
    auto p = poller(yaml);
    size_t n = 0;
    ASSERT_TRUE(hub.step(*p, n).ok);  // lines 2…1001 committed
    ASSERT_EQ(n, 1000u);
    ASSERT_TRUE(hub.step(*p, n, /*store=*/false).ok);  // read, never committed: relais dies
  }
  auto p = poller(yaml);  // restarted: a new instance, the committed checkpoint
  hub.drain(*p);
  EXPECT_EQ(hub.bodies.size(), 2500u);
  for (const auto& [key, times] : hub.offered) ASSERT_EQ(times, 1) << key;
  auto rows = lines_of(read_file(dir_ / "done" / "aides.csv.rapport.csv"));
  ASSERT_EQ(rows.size(), 2501u);
  for (size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].substr(0, rows[i].find(';')), std::to_string(i + 1));
  }
}

TEST_F(FolderPollerTest, CrashBetweenCommitAndReportOffersTheBatchAgainAsDuplicates) {
  put(dir_ / "aides.csv", numbered_csv(30));
  const std::string yaml = std::string(kCsv) + "batch: 10\n";
  FakeHub hub;
  {
    auto p = poller(yaml);
    size_t n = 0;
    ASSERT_TRUE(hub.step(*p, n).ok);
    ASSERT_TRUE(hub.step(*p, n, true, /*crash_before_report=*/true).ok);  // lines 12…21
    // A row cut short by the crash, as a torn append would leave it.
    std::ofstream(dir_ / ".relais" / "aides.csv.rapport.csv", std::ios::app) << "12;20";
  }
  auto p = poller(yaml);
  hub.drain(*p);
  EXPECT_EQ(hub.bodies.size(), 30u);
  auto rows = lines_of(read_file(dir_ / "done" / "aides.csv.rapport.csv"));
  ASSERT_EQ(rows.size(), 31u);
  EXPECT_EQ(rows[11], "12;200;déjà reçu (fichier déjà lu);M-dup;");  // offered again
  EXPECT_EQ(rows[21], "22;202;accepté;M21;");
}

TEST_F(FolderPollerTest, FailedMoveIsCompletedByTheNextPoll) {
  put(dir_ / "aides.csv", "N° demande;Identifiant;Montant\n547;58123;120\n");
  auto local = local_transport();
  auto p = poller(kCsv, local.get());
  counting_->fail_moves = 1;
  FakeHub hub;
  size_t n = 0;
  Status s = hub.step(*p, n);
  EXPECT_FALSE(s.ok);  // committed() could not move the file
  EXPECT_TRUE(fs::exists(dir_ / ".relais" / "aides.csv.fin"));
  hub.drain(*p);
  EXPECT_EQ(hub.bodies.size(), 1u);
  EXPECT_EQ(names_in(dir_ / "done"),
            (std::vector<std::string>{"aides.csv", "aides.csv.rapport.csv"}));
  EXPECT_EQ(names_in(dir_ / ".relais"), std::vector<std::string>{});
}

TEST_F(FolderPollerTest, FileThatCannotBeReadDoesNotHoldBackTheOthers) {
  put(dir_ / "a-interdit.csv", "N° demande;Identifiant;Montant\n1;2;3\n");
  put(dir_ / "b-bon.csv", "N° demande;Identifiant;Montant\n547;58123;120\n");
  auto local = local_transport();
  auto p = poller(kCsv, local.get());
  counting_->unreadable_name = "/a-interdit.csv";
  FakeHub hub;
  size_t n = 0;
  ASSERT_TRUE(hub.step(*p, n).ok);
  // b-bon.csv (one batch: read through and moved), though a-interdit.csv comes first; a poll
  // with only the bad file left fails…
  EXPECT_EQ(n, 1u);
  PollBatch b;
  Status s = p->poll(hub.checkpoint, b);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.detail.find("a-interdit.csv : Permission denied"), std::string::npos) << s.detail;
  EXPECT_TRUE(fs::exists(dir_ / "done" / "b-bon.csv"));
  counting_->unreadable_name.clear();  // …until its rights are fixed
  hub.drain(*p);
  EXPECT_EQ(hub.bodies.size(), 2u);
  EXPECT_TRUE(fs::exists(dir_ / "done" / "a-interdit.csv"));
}

TEST_F(FolderPollerTest, MissingFolderIsAReadablePollFailure) {
  auto p = poller(kCsv);
  fs::remove_all(dir_);
  PollBatch b;
  Status s = p->poll("", b);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "dossier surveillé inaccessible");
  EXPECT_NE(s.detail.find(dir_.string()), std::string::npos);
  EXPECT_FALSE(p->probe().ok);
  fs::create_directory(dir_);
  EXPECT_TRUE(p->probe().ok);
}

TEST_F(FolderPollerTest, MissingHeaderColumnSendsTheWholeFileToError) {
  put(dir_ / "aides.csv", "Identifiant;Montant\n58123;120\n");
  auto p = poller(kCsv);
  FakeHub hub;
  hub.drain(*p);
  EXPECT_TRUE(hub.bodies.empty());
  auto rows = lines_of(read_file(dir_ / "error" / "aides.csv.rapport.csv"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1], "1;422;illisible;;colonne « N° demande » absente de l'en-tête");
}

TEST_F(FolderPollerTest, Windows1252FileAndXmlFile) {
  put(dir_ / "a.csv", "N\xB0 demande;Identifiant;Montant\n547;58123;12\xA0\x80\n");
  auto p = poller(std::string(kCsv) + "encoding: windows-1252\n");
  FakeHub hub;
  hub.drain(*p);
  ASSERT_EQ(hub.bodies.size(), 1u);
  EXPECT_EQ(json::parse(hub.bodies[0])["aide"]["montant"], "12\u00a0€");

  put(dir_ / "b.xml", R"(<?xml version="1.0"?>
<g:export xmlns:g="urn:genesis"><g:aide id="1"><g:ind>58123</g:ind></g:aide>
<g:aide id="2"/><g:aide id="3"><g:ind>7</g:ind></g:aide></g:export>)");
  auto x = poller(
      "settle: 0s\nformat: xml\npattern: '*.xml'\nrecord: //aide\nbatch: 2\n"
      "fields: {aide.id: '@id', individu.id: ind}\nrequired: [individu.id]\n");
  FakeHub xhub;
  xhub.drain(*x);
  ASSERT_EQ(xhub.bodies.size(), 2u);
  EXPECT_EQ(json::parse(xhub.bodies[1]),
            json::parse(R"({"aide":{"id":"3"},"individu":{"id":"7"}})"));
  auto rows = lines_of(read_file(dir_ / "error" / "b.xml.rapport.csv"));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], "enregistrement;statut;résultat;message;motif");
  EXPECT_EQ(rows[2], "2;422;illisible;;champ obligatoire absent : individu.id");
}

TEST_F(FolderPollerTest, BatchTheStoreCouldNotCommitIsOfferedAgain) {
  put(dir_ / "aides.csv", numbered_csv(25));
  auto p = poller(std::string(kCsv) + "batch: 10\n");
  FakeHub hub;
  size_t n = 0;
  ASSERT_TRUE(hub.step(*p, n).ok);
  ASSERT_TRUE(hub.step(*p, n, /*store=*/false).ok);  // lines 12…21: not stored
  ASSERT_EQ(n, 10u);
  hub.drain(*p);
  EXPECT_EQ(hub.bodies.size(), 25u);
  for (const auto& [key, times] : hub.offered) ASSERT_EQ(times, 1) << key;
  auto rows = lines_of(read_file(dir_ / "done" / "aides.csv.rapport.csv"));
  ASSERT_EQ(rows.size(), 26u);
  EXPECT_EQ(rows[11], "12;202;accepté;M11;");
}

TEST_F(FolderPollerTest, MalformedXmlStaysUnreadableWhenItsBatchIsReadAgain) {
  put(dir_ / "a.xml", "<export>\n<aide>\n</export>");
  auto p = poller("settle: 0s\nformat: xml\nrecord: //aide\nfields: {a: '@a'}\n");
  FakeHub hub;
  size_t n = 0;
  ASSERT_TRUE(hub.step(*p, n, /*store=*/false).ok);  // the store could not commit it
  ASSERT_EQ(n, 1u);
  hub.drain(*p);  // read again from the same (cached) document
  auto rows = lines_of(read_file(dir_ / "error" / "a.xml.rapport.csv"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].rfind("1;422;illisible;;XML mal formé ligne 3 : ", 0), 0u) << rows[1];
  EXPECT_FALSE(fs::exists(dir_ / "done" / "a.xml"));
}

TEST(FolderSettings, ConfigurationErrorsNameTheKey) {
  auto check = [](const std::string& yaml) {
    YAML::Node node = YAML::Load(yaml);
    ConfigView view(node, {&folder_poller_spec()}, "sources.s.poll");
    try {
      folder_settings(view, "/etc/relais");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(check("path: in\n"), "");
  EXPECT_NE(check("path: in\ndelimiter: ';;'\n").find("delimiter"), std::string::npos);
  EXPECT_NE(check("path: in\nformat: xml\nfields: {a: b}\n").find("record"), std::string::npos);
  EXPECT_NE(check("path: in\nformat: xml\nrecord: '//a['\nfields: {a: b}\n").find("XPath"),
            std::string::npos);
  EXPECT_NE(check("path: in\nheader: false\ncolumns: {nom: a}\n").find("number"),
            std::string::npos);
  EXPECT_NE(check("path: in\ndone: .\n").find("done"), std::string::npos);
  YAML::Node node = YAML::Load("path: in\n");
  ConfigView view(node, {&folder_poller_spec()}, "p");
  FolderSettings s = folder_settings(view, "/etc/relais");
  EXPECT_EQ(s.path, "/etc/relais/in");
  EXPECT_EQ(s.done_dir, "/etc/relais/in/done");
  EXPECT_EQ(s.batch, 1000u);
  EXPECT_EQ(s.settle_ms, 5000);
}

}  // namespace
}  // namespace relais::file
