// The file connector over SFTP through the real relais binary and a real OpenSSH server
// (tests/support/sshd_server.h):
// - docs/adding-a-partner.md's MDPH example, its blocks extracted from the page and run as they
//   are: the configuration checked, the mapping's test cases passed, and a decisions file with a
//   bad line on the MDPH's SFTP server → the good lines reach CMS76 (an HTTP sink) through the
//   doc's mapping, the bad one is in the report and on the desk;
// - the file destination: 1,000 messages batched into files on the SFTP server (128 per file,
//   the last 104 when batch_wait passed), the connection cut (a proxy resets it) in the middle of
//   a file's upload: no partial file visible, every message in exactly one file (checksums
//   right), every delivery delivered.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "tests/support/relais_process.h"
#include "tests/support/sshd_server.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;

// The blocks of `doc` marked `<!-- mdph-test: NAME -->`: NAME → the fenced block after it.
std::map<std::string, std::string> doc_blocks(const std::string& doc) {
  std::map<std::string, std::string> out;
  std::regex marker("<!-- mdph-test: ([^ ]+) -->\n```[a-z]*\n");
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), marker); it != std::sregex_iterator();
       ++it) {
    size_t start = size_t(it->position(0) + it->length(0));
    size_t end = doc.find("\n```", start - 1);
    out[(*it)[1]] = doc.substr(start, end + 1 - start);
  }
  return out;
}

std::string to_cp1252_crlf(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size(); ++i) {
    auto c = static_cast<unsigned char>(utf8[i]);
    if (c == 0xC2 || c == 0xC3) {  // the Latin-1 range: one byte in Windows-1252
      out += char(((c & 0x1F) << 6) | (static_cast<unsigned char>(utf8[++i]) & 0x3F));
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += char(c);
    }
  }
  return out;
}

json source_state(HttpClient& api, const std::string& name) {
  json all = api.get("/api/v1/sources").json();
  for (const auto& item : all["items"]) {
    if (item["source"] == name) return item;
  }
  return json();
}

TEST(PartnerDoc, MdphExampleRunsAsWritten) {
  std::map<std::string, std::string> blocks =
      doc_blocks(read_file(RELAIS_SOURCE_DIR "/docs/adding-a-partner.md"));
  ASSERT_EQ(blocks.size(), 4u);
  for (const char* name : {"relais.yaml", "mappings/mdph-decision-cms76.yaml",
                           "mappings/mdph-decision-cms76.test.yaml", "decisions-20261203.csv"}) {
    ASSERT_EQ(blocks.count(name), 1u) << name;
  }
  SshdServer sshd;
  sshd.start();
  relais::tools::HttpSink cms76;
  TempDir work("relais-mdph-");
  fs::create_directories(work.path() + "/mappings");
  for (const auto& [name, text] : blocks) {
    if (name.rfind("mappings/", 0) == 0) work.write(name, text);
  }
  std::string depot = sshd.home() + "/depot/decisions";
  fs::create_directories(depot);
  // The site's values, as the service's environment would give them.
  std::map<std::string, std::string> env = {
      {"MDPH_SFTP_HOST", "127.0.0.1"},
      {"MDPH_SFTP_PORT", std::to_string(sshd.port())},
      {"MDPH_SFTP_USER", sshd.user()},
      {"MDPH_SFTP_KEY", sshd.private_key()},
      {"MDPH_KNOWN_HOSTS", sshd.known_hosts()},
      {"MDPH_SFTP_DIR", depot},
      {"MDPH_POLL_INTERVAL", "100ms"},
      {"MDPH_SETTLE", "200ms"},
      {"CMS76_URL", "http://127.0.0.1:" + std::to_string(cms76.port())}};
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);

  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = blocks["relais.yaml"] + "mappings:\n  directory: " + work.path() + "/mappings\n";
  RelaisProcess relais(o);
  // What the page tells the admin to run first.
  CommandResult check = run_command({RELAIS_BINARY, "check-config", relais.config_path()});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  relais.start();
  for (const auto& [k, v] : env) ::unsetenv(k.c_str());

  // The partner's export: written under a .part name, then renamed.
  std::string csv = to_cp1252_crlf(blocks["decisions-20261203.csv"]);
  {
    std::ofstream out(depot + "/decisions-20261203.csv.part", std::ios::binary);
    out << csv;
  }
  fs::rename(depot + "/decisions-20261203.csv.part", depot + "/decisions-20261203.csv");

  ASSERT_TRUE(wait_until(
      [&] { return fs::exists(sshd.home() + "/depot/decisions/error/decisions-20261203.csv"); },
      milliseconds(20000)))
      << relais.stdout_text();
  ASSERT_EQ(cms76.wait_for(2, 10000), 2u) << relais.stdout_text() << relais.stderr_text();
  std::map<std::string, json> calls;
  for (const auto& r : cms76.requests()) calls[r.path] = json::parse(r.body);
  ASSERT_EQ(calls.count("/api/individus/58123/decisions-mdph"), 1u);
  ASSERT_EQ(calls.count("/api/individus/58125/decisions-mdph"), 1u);
  json first = calls["/api/individus/58123/decisions-mdph"];
  EXPECT_EQ(first["individu_id"], 58123);
  EXPECT_EQ(first["reference"], "MDPH-D-2026-0001");
  EXPECT_EQ(first["prestation"], "PCH");
  EXPECT_EQ(first["decide_le"], "2026-12-03");
  EXPECT_EQ(calls["/api/individus/58125/decisions-mdph"]["sens"], "Rejet");

  std::string report = read_file(depot + "/error/decisions-20261203.csv.rapport.csv");
  EXPECT_NE(report.find("\n3;422;illisible;;nombre de champs incorrect"), std::string::npos)
      << report;
  HttpClient api(relais.base_url(), relais.token());
  HttpResponse rejects = api.get("/api/v1/sources/mdph-decisions/rejects");
  ASSERT_EQ(rejects.status, 200) << rejects.body;
  ASSERT_EQ(rejects.json()["items"].size(), 1u) << rejects.body;
  EXPECT_EQ(rejects.json()["items"][0]["position"], "ligne 3");
  EXPECT_EQ(rejects.body.find("58124"), std::string::npos);  // never the line's content
  EXPECT_EQ(source_state(api, "mdph-decisions")["failing"], false);

  // The doc's mapping passes its own tests (the test file of the page).
  CommandResult t = run_command({RELAIS_MAPPING_TESTS, work.path() + "/mappings"});
  EXPECT_EQ(t.exit_code, 0) << t.out << t.err;
  EXPECT_NE(t.out.find("mdph-decision-cms76: 1 case(s) passed"), std::string::npos)
      << t.out << t.err;
  EXPECT_EQ(relais.stop(), 0);
}

TEST(SftpSource, ChangedHostKeyShowsOnTheDashboardAndNothingIsRead) {
  SshdServer sshd;
  sshd.start();
  std::string depot = sshd.home() + "/depot";
  fs::create_directories(depot);
  {
    std::ofstream out(depot + "/a.csv", std::ios::binary);
    out << "id\r\n1\r\n";
  }
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml =
      "sources:\n  mdph:\n    type: $.event\n    poll:\n      kind: folder\n"
      "      interval: 100ms\n      settle: 100ms\n      path: " +
      depot +
      "\n      constants: {event: x}\n      sftp:\n        host: 127.0.0.1\n"
      "        port: " +
      std::to_string(sshd.port()) + "\n        user: " + sshd.user() +
      "\n        private_key: " + sshd.private_key() +
      "\n        known_hosts: " + sshd.wrong_known_hosts() + "\n";
  RelaisProcess relais(o);
  relais.start();
  HttpClient api(relais.base_url(), relais.token());
  ASSERT_TRUE(wait_until([&] { return source_state(api, "mdph").value("failing", false); },
                         milliseconds(10000)));
  std::string why = source_state(api, "mdph")["last_error"];
  EXPECT_NE(why.find("serveur SFTP refusé"), std::string::npos) << why;
  EXPECT_NE(why.find("n'est pas celle de known_hosts"), std::string::npos) << why;
  EXPECT_TRUE(fs::exists(depot + "/a.csv"));  // untouched
  EXPECT_FALSE(fs::exists(depot + "/.relais"));
  EXPECT_EQ(relais.stop(), 0);
}

// The destination `mdph-retour`: CSV in Windows-1252 with a checksum, batched, on the SFTP server
// at `port` (the server's, or a proxy's in front of it).
std::string retour_yaml(const SshdServer& sshd, int port, const std::string& out, int batch) {
  return "sources:\n"
         "  app:\n"
         "    type: $.type\n"
         "    correlation: \"{$.key}\"\n"
         "    idempotency: $.id\n"
         "connectors:\n"
         "  mdph-retour:\n"
         "    connector: file\n"
         "    path: " +
         out +
         "\n"
         "    prefix: accuses\n"
         "    format: csv\n"
         "    encoding: windows-1252\n"
         "    columns: {Identifiant: id, Dossier: dossier, Libellé: texte}\n"
         "    checksum: true\n"
         "    batch_size: " +
         std::to_string(batch) +
         "\n"
         "    batch_wait: 2s\n"
         "    concurrency: 8\n"
         "    retry: {initial: 100ms, max: 1s, max_attempts: 1000}\n"
         "    sftp:\n"
         "      host: 127.0.0.1\n"
         "      port: " +
         std::to_string(port) + "\n      user: " + sshd.user() +
         "\n      private_key: " + sshd.private_key() +
         "\n      known_hosts: " + sshd.known_hosts() +
         "\n      timeout: 10s\n"
         "routes:\n"
         "  - name: retour\n"
         "    source: app\n"
         "    type: accuse\n"
         "    to: [{destination: mdph-retour}]\n";
}

void post_accuses(HttpClient& api, int from, int to) {
  std::string nd;
  for (int i = from; i < to; ++i) {
    nd += "{\"type\": \"accuse\", \"id\": \"m" + std::to_string(i) + "\", \"key\": \"k" +
          std::to_string(i) + "\", \"dossier\": \"D-" + std::to_string(i) +
          "\", \"texte\": \"reçu\"}\n";
  }
  HttpResponse r = api.post_ndjson("/api/v1/sources/app/messages:batch", nd);
  ASSERT_EQ(r.status, 200) << r.body;
}

// Identifiant → how many times it is in the visible files of `out`.
std::map<std::string, int> rows_in(const std::string& out) {
  std::map<std::string, int> seen;
  for (const auto& e : fs::directory_iterator(out)) {
    std::string name = e.path().filename();
    if (name[0] == '.' || e.path().extension() != ".csv") continue;
    std::istringstream in(read_file(e.path()));
    std::string l;
    std::getline(in, l);  // header
    while (std::getline(in, l)) ++seen[l.substr(0, l.find(';'))];
  }
  return seen;
}

// Messages m0…m<n-1> are each in exactly one file: nothing lost, nothing written twice.
void expect_each_once(const std::string& out, int n) {
  std::map<std::string, int> seen = rows_in(out);
  EXPECT_EQ(seen.size(), size_t(n));
  for (int i = 0; i < n; ++i) EXPECT_EQ(seen["m" + std::to_string(i)], 1) << i;
}

size_t csv_files(const std::string& out) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    n += e.path().filename().string()[0] != '.' && e.path().extension() == ".csv";
  }
  return n;
}

TEST(SftpDestination, ThousandMessagesBatchedWithAConnectionCutMidFile) {
  SshdServer sshd;
  sshd.start();
  DroppingProxy proxy(sshd.port());
  std::string out = sshd.home() + "/retour";
  fs::create_directories(out);
  // known_hosts names the server's port; the proxy's port is another: name it too.
  std::string line = read_file(sshd.known_hosts());
  std::string key = line.substr(line.find(' '));
  std::ofstream(sshd.known_hosts(), std::ios::app) << "[127.0.0.1]:" << proxy.port() << key;
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = retour_yaml(sshd, proxy.port(), out, 128);
  RelaisProcess relais(o);
  relais.start();
  HttpClient api(relais.base_url(), relais.token());

  // A first 300, so that a file has been written; then the cut is armed for the middle of a
  // later upload, and 700 more.
  post_accuses(api, 0, 300);
  ASSERT_TRUE(wait_until([&] { return csv_files(out) > 0; }, milliseconds(20000)));
  // One row is ~20 bytes: 2,000 bytes from now on falls inside the next file's upload.
  proxy.drop_after(2000);
  post_accuses(api, 300, 1000);

  ASSERT_TRUE(wait_until([&] { return rows_in(out).size() == 1000; }, milliseconds(60000)))
      << rows_in(out).size() << "\n"
      << relais.stdout_text();
  // The cut fell in a file's upload, which was written again whole.
  EXPECT_GE(proxy.drops(), 1);
  std::string log = relais.stdout_text() + relais.stderr_text();
  EXPECT_NE(log.find("not written (try 1): écriture impossible"), std::string::npos) << log;
  expect_each_once(out, 1000);
  // Every visible file is whole: its checksum file says so.
  for (const auto& e : fs::directory_iterator(out)) {
    std::string name = e.path().filename();
    EXPECT_NE(name[0], '.') << "a temporary file is left: " << name;
    if (e.path().extension() != ".csv") continue;
    std::string sum = read_file(e.path().string() + ".sha256");
    CommandResult check = run_command({"/usr/bin/sha256sum", e.path().string()});
    EXPECT_EQ(sum.substr(0, 64), check.out.substr(0, 64)) << name;
    EXPECT_NE(read_file(e.path()).find("re\xE7u"), std::string::npos);  // Windows-1252
  }
  // 7 files of 128 (full), the last 104 written when batch_wait passed.
  EXPECT_EQ(csv_files(out), 8u);
  // Every delivery ends delivered (its outcome recorded once its file was in place).
  ASSERT_TRUE(wait_until(
      [&] {
        return metric_value(api.get("/metrics").body,
                            "relais_delivered_total{source=\"app\",destination=\"mdph-retour\"}") ==
               1000;
      },
      milliseconds(30000)));
  EXPECT_EQ(relais.stop(), 0);
}

// relais killed (SIGKILL) while batches are written: after the restart every message is in
// exactly one file — the batch journal tells the deliveries of a batch already in place that
// they are delivered, the others go into new batches — and the journal empties.
TEST(SftpDestination, KillNineWhileBatchesAreWrittenLosesNothingAndWritesNothingTwice) {
  SshdServer sshd;
  sshd.start();
  std::string out = sshd.home() + "/retour";
  fs::create_directories(out);
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = retour_yaml(sshd, sshd.port(), out, 40);
  RelaisProcess relais(o);
  relais.start();
  {
    HttpClient api(relais.base_url(), relais.token());
    post_accuses(api, 0, 1000);
  }
  ASSERT_TRUE(wait_until([&] { return csv_files(out) >= 3; }, milliseconds(20000)));
  relais.kill9();
  size_t before = rows_in(out).size();
  relais.restart();
  HttpClient api(relais.base_url(), relais.token());
  ASSERT_TRUE(wait_until([&] { return rows_in(out).size() == 1000; }, milliseconds(60000)))
      << rows_in(out).size() << "\n"
      << relais.stdout_text();
  EXPECT_LT(before, 1000u);  // the kill fell before the end
  expect_each_once(out, 1000);
  // Nothing left waiting: every delivery answered, the journal emptied.
  ASSERT_TRUE(wait_until(
      [&] {
        return metric_value(api.get("/metrics").body,
                            "relais_queue_depth{destination=\"mdph-retour\"}") == 0;
      },
      milliseconds(30000)));
  // The journal empties once the answers had their time to be recorded (10 s here).
  ASSERT_TRUE(wait_until([&] { return fs::is_empty(relais.dir() + "/file-batches/mdph-retour"); },
                         milliseconds(40000), milliseconds(200)));
  EXPECT_EQ(relais.stop(), 0);
}

}  // namespace
}  // namespace relais::testing
