// The file connector over SFTP against a real OpenSSH server (tests/support/sshd_server.h),
// in-process: the SFTP transport (list, read, write, move without replacing, remove, folders),
// the known_hosts check (a changed host key is refused with a clear reason), and the file
// publisher (temporary name, checksum, a retry after a lost rename answer finds its file).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <yaml-cpp/yaml.h>

#include "connectors/file/file_destination.h"
#include "connectors/file/folder_poller.h"
#include "connectors/file/sftp_transport.h"
#include "core/crypto.h"
#include "tests/support/sshd_server.h"

namespace relais::file {
namespace {

namespace fs = std::filesystem;
using relais::testing::read_file;
using relais::testing::SshdServer;

SftpSettings settings_for(const SshdServer& sshd) {
  SftpSettings s;
  s.host = "127.0.0.1";
  s.port = sshd.port();
  s.user = sshd.user();
  s.private_key = sshd.private_key();
  s.known_hosts = sshd.known_hosts();
  s.timeout_ms = 20000;
  return s;
}

TEST(Sftp, TransportListsReadsWritesMovesOnARealServer) {
  SshdServer sshd;
  sshd.start();
  auto t = sftp_transport(settings_for(sshd));
  std::string dir = sshd.home() + "/in box";  // a space: escaped in URLs, quoted in commands
  ASSERT_TRUE(t->make_dir(dir + "/done").ok);
  EXPECT_TRUE(fs::is_directory(dir + "/done"));

  Status s = t->write(dir + "/a.csv", "h\r\n1\r\n", false);
  ASSERT_TRUE(s.ok) << s.error << " " << s.detail;
  ASSERT_TRUE(t->write(dir + "/a.csv", "2\r\n", true).ok);
  EXPECT_EQ(read_file(dir + "/a.csv"), "h\r\n1\r\n2\r\n");

  std::vector<FileEntry> entries;
  s = t->list(dir, entries);
  ASSERT_TRUE(s.ok) << s.detail;
  ASSERT_EQ(entries.size(), 1u);  // the folder done/ is not a file
  EXPECT_EQ(entries[0].name, "a.csv");
  EXPECT_EQ(entries[0].size, 9);
  EXPECT_GT(entries[0].mtime_ms, 0);

  std::string got;
  ASSERT_TRUE(t->read(dir + "/a.csv", 3, 3, got).ok);
  EXPECT_EQ(got, "1\r\n");
  ASSERT_TRUE(t->read(dir + "/a.csv", 6, 100, got).ok);
  EXPECT_EQ(got, "2\r\n");
  ASSERT_TRUE(t->read(dir + "/a.csv", 9, 100, got).ok);  // at its end: nothing
  EXPECT_EQ(got, "");
  s = t->read(dir + "/missing.csv", 0, 10, got);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.http_status, 404);

  FileEntry e;
  ASSERT_TRUE(t->stat(dir + "/a.csv", e).ok);
  EXPECT_EQ(e.size, 9);
  EXPECT_EQ(t->stat(dir + "/nope", e).http_status, 404);

  // A rename never replaces.
  ASSERT_TRUE(t->write(dir + "/done/a.csv", "other", false).ok);
  s = t->move(dir + "/a.csv", dir + "/done/a.csv");
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.http_status, 409) << s.detail;
  EXPECT_EQ(read_file(dir + "/done/a.csv"), "other");
  s = t->move(dir + "/a.csv", dir + "/done/a-2.csv");
  ASSERT_TRUE(s.ok) << s.detail;
  EXPECT_FALSE(fs::exists(dir + "/a.csv"));
  EXPECT_EQ(read_file(dir + "/done/a-2.csv"), "h\r\n1\r\n2\r\n");

  ASSERT_TRUE(t->remove(dir + "/done/a.csv").ok);
  EXPECT_FALSE(fs::exists(dir + "/done/a.csv"));
  EXPECT_TRUE(t->remove(dir + "/done/a.csv").ok);  // already gone: fine

  s = t->list(sshd.home() + "/nowhere", entries);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("dossier"), std::string::npos);

  // The connection dies (sessions killed): the next call connects again.
  EXPECT_GE(sshd.kill_sessions(), 1);
  s = t->list(dir + "/done", entries);
  if (!s.ok) s = t->list(dir + "/done", entries);  // the first call may see the dead one
  ASSERT_TRUE(s.ok) << s.detail;
  EXPECT_EQ(entries.size(), 1u);
}

TEST(Sftp, ChangedHostKeyIsRefusedWithAClearReason) {
  SshdServer sshd;
  sshd.start();
  SftpSettings s = settings_for(sshd);
  s.known_hosts = sshd.wrong_known_hosts();
  auto t = sftp_transport(s);
  std::vector<FileEntry> entries;
  Status st = t->list(sshd.home(), entries);
  ASSERT_FALSE(st.ok);
  EXPECT_EQ(st.error, "serveur SFTP refusé");
  EXPECT_NE(st.detail.find("n'est pas celle de known_hosts"), std::string::npos) << st.detail;
  // Nothing was written either.
  EXPECT_FALSE(t->write(sshd.home() + "/x.csv", "x", false).ok);
  EXPECT_FALSE(fs::exists(sshd.home() + "/x.csv"));

  // A known_hosts that cannot be read: said at start-up.
  s.known_hosts = sshd.home() + "/no_such_known_hosts";
  EXPECT_THROW(sftp_transport(s), std::runtime_error);
  // A host that known_hosts does not name: refused too.
  s.known_hosts = sshd.home() + "/../empty_known_hosts";
  std::ofstream(s.known_hosts).close();
  auto t2 = sftp_transport(s);
  st = t2->list(sshd.home(), entries);
  ASSERT_FALSE(st.ok);
  EXPECT_NE(st.detail.find("n'est pas dans known_hosts"), std::string::npos) << st.detail;
}

TEST(Sftp, KeyWithAPassphrase) {
  SshdServer sshd;
  sshd.start();
  SftpSettings s = settings_for(sshd);
  s.private_key = sshd.add_client_key("phrase de passe");
  s.key_passphrase = "wrong";
  std::vector<FileEntry> entries;
  Status st = sftp_transport(s)->list(sshd.home(), entries);
  EXPECT_FALSE(st.ok);
  EXPECT_EQ(st.error, "authentification SFTP refusée") << st.detail;
  EXPECT_EQ(st.detail.find("wrong"), std::string::npos) << st.detail;  // never the secret
  s.key_passphrase = "phrase de passe";
  st = sftp_transport(s)->list(sshd.home(), entries);
  EXPECT_TRUE(st.ok) << st.error << " " << st.detail;
}

// The watched folder on the SFTP server: a `.part` file is never read, a file still growing waits
// until it settled, then its records are read and it moves to done/ on the server.
TEST(Sftp, WatchedFolderReadsOnlySettledFilesAndMovesThemOnTheServer) {
  SshdServer sshd;
  sshd.start();
  std::string in = sshd.home() + "/in";
  fs::create_directories(in);
  YAML::Node node = YAML::Load(
      "path: " + in + "\nsettle: 5s\nconstants: {event: e}\nsftp: {host: " + "127.0.0.1, port: " +
      std::to_string(sshd.port()) + ", user: " + sshd.user() +
      ", private_key: " + sshd.private_key() + ", known_hosts: " + sshd.known_hosts() + "}\n");
  std::vector<ConfigError> errors;
  ASSERT_TRUE(validate(node, {&folder_poller_spec()}, "p", "t.yaml", errors))
      << errors[0].to_string();
  ConfigView view(node, {&folder_poller_spec()}, "p");
  ManualClock clock(1'000'000);
  FolderPoller poller(folder_settings(view, "/"),
                      sftp_transport(sftp_settings(view.object("sftp"), "/")), &clock);
  std::ofstream(in + "/b.csv.part") << "id\nx\n";
  std::ofstream(in + "/a.csv") << "id\n1\n";
  auto poll = [&](PollBatch& b) {
    Status st = poller.poll("", b);
    EXPECT_TRUE(st.ok) << st.error << " " << st.detail;
    return b.records.size();
  };
  PollBatch b;
  EXPECT_EQ(poll(b), 0u);                                // just seen
  std::ofstream(in + "/a.csv", std::ios::app) << "2\n";  // still being written
  clock.advance(6000);
  EXPECT_EQ(poll(b), 0u);  // it changed: not settled
  clock.advance(6000);
  ASSERT_EQ(poll(b), 2u);
  EXPECT_EQ(nlohmann::json::parse(b.records[1].body)["id"], "2");
  std::vector<PolledOutcome> outcomes(2);
  Status st = poller.committed(b, true, outcomes);
  ASSERT_TRUE(st.ok) << st.detail;
  EXPECT_TRUE(fs::exists(in + "/done/a.csv"));
  EXPECT_TRUE(fs::exists(in + "/done/a.csv.rapport.csv"));
  EXPECT_TRUE(fs::exists(in + "/b.csv.part"));  // never read, never moved
  EXPECT_TRUE(poller.probe().ok);
}

// The local transport, whose rename answer is "lost" once: the file was renamed.
class LostAnswer final : public FileTransport {
 public:
  explicit LostAnswer(FileTransport& inner) : inner_(inner) {}
  Status list(const std::string& d, std::vector<FileEntry>& o) override {
    return inner_.list(d, o);
  }
  Status read(const std::string& p, int64_t off, size_t max, std::string& o) override {
    return inner_.read(p, off, max, o);
  }
  Status move(const std::string& f, const std::string& t) override {
    Status s = inner_.move(f, t);
    if (lose > 0 && s.ok) {
      --lose;
      return Status::failure(503, "déplacement impossible", "connexion perdue");
    }
    return s;
  }
  Status write(const std::string& p, const std::string& d, bool a) override {
    ++writes;
    return inner_.write(p, d, a);
  }
  Status remove(const std::string& p) override { return inner_.remove(p); }
  Status make_dir(const std::string& d) override { return inner_.make_dir(d); }
  FileTransport& inner_;
  int lose = 0;
  int writes = 0;
};

TEST(FilePublisher, RetryAfterALostRenameAnswerFindsItsFileAndWritesNothingTwice) {
  relais::testing::TempDir dir("relais-publish-");
  auto local = local_transport();
  LostAnswer t(*local);
  FilePublisher pub(t, dir.path(), true);
  t.lose = 1;
  Status s = pub.publish("mdph-000000000001-000000000003.csv", "a\r\nb\r\n");
  EXPECT_FALSE(s.ok);  // the checksum's rename answer was lost
  s = pub.publish("mdph-000000000001-000000000003.csv", "a\r\nb\r\n");
  ASSERT_TRUE(s.ok) << s.detail;
  int writes = t.writes;
  EXPECT_EQ(writes, 2);  // the checksum once, the file once
  ASSERT_TRUE(pub.publish("mdph-000000000001-000000000003.csv", "a\r\nb\r\n").ok);
  EXPECT_EQ(t.writes, writes);  // there already: not written again
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), 2u);  // no temporary name left
  EXPECT_EQ(names[0], "mdph-000000000001-000000000003.csv");
  EXPECT_EQ(read_file(dir.path() + "/" + names[1]),
            sha256_hex("a\r\nb\r\n") + "  mdph-000000000001-000000000003.csv\n");
  // Same name, other content: refused, nothing replaced.
  s = pub.publish("mdph-000000000001-000000000003.csv", "other content\r\n");
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.http_status, 409);
}

TEST(FileDestination, RendersCsvInWindows1252AndXml) {
  FileDestinationSettings s;
  s.columns.emplace_back("N° dossier", message_path("dossier.numero"));
  s.columns.emplace_back("Nom", message_path("personne.nom"));
  s.encoding = Encoding::Windows1252;
  std::string row, why;
  nlohmann::json m = {{"dossier", {{"numero", 12}}}, {"personne", {{"nom", "Zoé; \"Z\""}}}};
  ASSERT_TRUE(render_record(s, m, "", "application/json", row, why)) << why;
  EXPECT_EQ(row, "12;\"Zo\xE9; \"\"Z\"\"\"\r\n");
  EXPECT_EQ(file_text(s, {row}), "N\xB0 dossier;Nom\r\n" + row);
  m["personne"]["nom"] = "Łukasz";  // not in Windows-1252
  EXPECT_FALSE(render_record(s, m, "", "application/json", row, why));
  EXPECT_EQ(why.find("ukasz"), std::string::npos);  // the value is never quoted
  s.xml = true;
  ASSERT_TRUE(render_record(s, {{"a", {{"b", "x<y"}}}}, "", "application/json", row, why));
  EXPECT_EQ(row, "<message><a><b>x&lt;y</b></a></message>");
  ASSERT_TRUE(render_record(s, {}, "<decision id=\"1\"/>", "application/xml", row, why));
  EXPECT_EQ(row, "<decision id=\"1\"/>");
  EXPECT_EQ(batch_file_name(s, {7}), "relais-000000000007.xml");
  std::string name = batch_file_name(s, {7, 8, 9});
  EXPECT_EQ(name, "relais-000000000007-000000000009-" + sha256_hex("7,8,9,").substr(0, 8) + ".xml");
  EXPECT_NE(batch_file_name(s, {7, 9}), name);  // other deliveries, another name
}

}  // namespace
}  // namespace relais::file
