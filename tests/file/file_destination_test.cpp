// The file destination (connectors/file/file_destination.h) in-process over a local folder, as
// the hub drives it: one file per message (a retry finds its file), and batches — deliveries
// deferred without holding a slot, the batch sealed when full or when batch_wait passed (a
// ManualClock), published by the connector's thread, its deliveries woken and then delivered
// with the file's name.

#include "connectors/file/file_destination.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include <yaml-cpp/yaml.h>

#include "core/store_backend.h"
#include "tests/support/relais_process.h"

namespace relais::file {
namespace {

namespace fs = std::filesystem;
using relais::testing::read_file;
using relais::testing::TempDir;
using relais::testing::wait_until;

// The hub's side: which deliveries were woken.
class FakeHub final : public HubServices {
 public:
  Status post(const std::string&, const std::string&, const std::string&, const std::string&,
              std::string&) override {
    return Status::failure(501, "unused");
  }
  void wake(const std::string&, const std::string&) override {}
  void wake_delivery(const std::string& destination, int64_t id, const std::string&) override {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(destination, "retour");
    woken.insert(id);
  }
  std::set<int64_t> woken_now() {
    std::lock_guard<std::mutex> lock(mu);
    return woken;
  }
  std::mutex mu;
  std::set<int64_t> woken;
};

class FileDestinationTest : public ::testing::Test {
 protected:
  std::unique_ptr<Connector> make(const std::string& yaml, const std::string& store_path = "") {
    YAML::Node node = YAML::Load("path: " + dir_.path() + "\nprefix: t\n" +
                                 "columns: {Id: id, Nom: nom}\n" + yaml);
    std::vector<ConfigError> errors;
    EXPECT_TRUE(validate(node, {&file_destination_spec()}, "connectors.retour", "t.yaml", errors))
        << (errors.empty() ? "" : errors[0].to_string());
    ConnectorRegistry registry;
    register_file_destination(registry);
    ConnectorContext ctx;
    ctx.name = "retour";
    ctx.config = ConfigView(node, {&file_destination_spec()}, "connectors.retour");
    ctx.clock = &clock_;
    ctx.hub = &hub_;
    ctx.base_dir = "/";
    if (!store_path.empty()) {
      stores_ = open_store_backend(StoreLocation{"sqlite", store_path, "", "", ""});
      ctx.stores = stores_.get();
    }
    return registry.find("file")->create(ctx);
  }

  std::unique_ptr<StoreBackend> stores_;  // the journal's folder (state_dir)

  Outcome send(Connector& c, int64_t id, const std::string& nom) {
    nlohmann::json mapped = {{"id", "m" + std::to_string(id)}, {"nom", nom}};
    std::string payload = mapped.dump();
    DeliveryRequest r;
    r.delivery_id = id;
    r.mapped = &mapped;
    r.payload = &payload;
    r.content_type = "application/json";
    return c.deliver(r);
  }

  FileDestinationSettings settings() const {
    FileDestinationSettings s;
    s.prefix = "t";
    return s;
  }

  std::set<std::string> names() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_.path())) out.insert(e.path().filename());
    return out;
  }

  TempDir dir_{"relais-filedest-"};
  ManualClock clock_{1'000'000};
  FakeHub hub_;
};

TEST_F(FileDestinationTest, OneFilePerMessageAndARetryFindsItsFile) {
  auto c = make("checksum: true\n");
  Outcome o = send(*c, 9, "Zoé");
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
  EXPECT_EQ(o.external_ref, "t-000000000009.csv");
  EXPECT_EQ(read_file(dir_.path() + "/t-000000000009.csv"), "Id;Nom\r\nm9;Zoé\r\n");
  // The same delivery again (its outcome was not recorded): the file is there, not rewritten.
  o = send(*c, 9, "Zoé");
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
  EXPECT_EQ(names(), (std::set<std::string>{"t-000000000009.csv", "t-000000000009.csv.sha256"}));
}

TEST_F(FileDestinationTest, BatchesWaitDeferredThenDeliverOnceTheirFileIsInPlace) {
  auto c = make("batch_size: 3\nbatch_wait: 10s\n");
  for (int64_t id : {1, 2}) {
    Outcome o = send(*c, id, "n" + std::to_string(id));
    ASSERT_EQ(o.kind, Outcome::Kind::Defer) << o.text;  // no slot waits for the flush
    EXPECT_GT(o.not_before, clock_.now_ms());
  }
  Outcome again = send(*c, 1, "n1");  // back before its batch is written: still waiting
  EXPECT_EQ(again.kind, Outcome::Kind::Defer);
  EXPECT_NE(again.text.find("lot ouvert"), std::string::npos) << again.text;
  EXPECT_TRUE(names().empty());

  ASSERT_EQ(send(*c, 3, "n3").kind, Outcome::Kind::Defer);  // full: sealed, flushed
  ASSERT_TRUE(
      wait_until([&] { return hub_.woken_now().size() == 3; }, std::chrono::milliseconds(5000)));
  std::string first = batch_file_name(settings(), {1, 2, 3});
  EXPECT_EQ(read_file(dir_.path() + "/" + first), "Id;Nom\r\nm1;n1\r\nm2;n2\r\nm3;n3\r\n");
  for (int64_t id : {1, 2, 3}) {
    Outcome o = send(*c, id, "n");
    EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
    EXPECT_EQ(o.external_ref, first);
  }

  // A batch that does not fill up is written when batch_wait passed.
  ASSERT_EQ(send(*c, 4, "n4").kind, Outcome::Kind::Defer);
  clock_.advance(9'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the flusher looks (and waits)
  EXPECT_FALSE(fs::exists(dir_.path() + "/t-000000000004.csv"));
  clock_.advance(1'000);
  ASSERT_TRUE(
      wait_until([&] { return hub_.woken_now().count(4) == 1; }, std::chrono::milliseconds(5000)));
  EXPECT_EQ(read_file(dir_.path() + "/t-000000000004.csv"), "Id;Nom\r\nm4;n4\r\n");
  EXPECT_EQ(send(*c, 4, "n4").kind, Outcome::Kind::Delivered);
  for (const auto& n : names()) EXPECT_NE(n[0], '.') << "temporary file left: " << n;
}

// A restart between a batch's rename and its deliveries' outcomes: the batch journal (beside the
// store) tells them their file is in place — delivered, nothing written twice. A journal naming a
// file that was never renamed into place sends its deliveries into a new batch.
TEST_F(FileDestinationTest, AfterARestartABatchWhoseFileIsInPlaceIsNotWrittenAgain) {
  TempDir state("relais-filedest-store-");
  std::string store = state.path() + "/relais.db";
  std::string journal = state.path() + "/file-batches/retour";
  std::string name = batch_file_name(settings(), {1, 2, 3});
  {
    auto c = make("batch_size: 3\n", store);
    for (int64_t id : {3, 1, 2}) ASSERT_EQ(send(*c, id, "n").kind, Outcome::Kind::Defer);
    ASSERT_TRUE(
        wait_until([&] { return hub_.woken_now().size() == 3; }, std::chrono::milliseconds(5000)));
    EXPECT_TRUE(fs::exists(journal + "/" + name));
  }  // relais stops before any of the three outcomes is recorded
  std::string content = read_file(dir_.path() + "/" + name);
  EXPECT_EQ(content, "Id;Nom\r\nm1;n\r\nm2;n\r\nm3;n\r\n");  // in delivery order
  // A batch whose file never reached its place (its journal only).
  std::string lost = batch_file_name(settings(), {7, 8});
  std::ofstream(journal + "/" + lost) << "7\n8\n";
  // A batch whose deliveries were all recorded before the stop: they never come back.
  std::string old = batch_file_name(settings(), {4, 5});
  std::ofstream(journal + "/" + old) << "4\n5\n";

  auto c = make("batch_size: 3\n", store);
  for (int64_t id : {2, 1, 3}) {
    Outcome o = send(*c, id, "n");
    EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
    EXPECT_EQ(o.external_ref, name);
  }
  EXPECT_EQ(read_file(dir_.path() + "/" + name), content);
  EXPECT_EQ(send(*c, 7, "n").kind, Outcome::Kind::Defer);  // into a new batch
  EXPECT_EQ(send(*c, 8, "n").kind, Outcome::Kind::Defer);
  EXPECT_FALSE(fs::exists(dir_.path() + "/" + lost));
  EXPECT_EQ(names(), (std::set<std::string>{name}));
  // The journal files stay while an answer may still be on its way to the store, then go: the
  // answered ones after a grace, what was read at start-up once its deliveries had their time.
  EXPECT_TRUE(fs::exists(journal + "/" + name));
  clock_.advance(60'000 + 1'000 + 120'000);
  // Meanwhile 7 and 8's new batch was written (the same deliveries: the same name).
  ASSERT_TRUE(
      wait_until([&] { return hub_.woken_now().count(8) == 1; }, std::chrono::milliseconds(5000)));
  EXPECT_EQ(send(*c, 7, "n").kind, Outcome::Kind::Delivered);
  EXPECT_EQ(send(*c, 8, "n").kind, Outcome::Kind::Delivered);
  EXPECT_EQ(names(), (std::set<std::string>{name, lost}));
  clock_.advance(120'000);
  ASSERT_TRUE(wait_until([&] { return fs::is_empty(journal); }, std::chrono::milliseconds(5000)))
      << fs::directory_iterator(journal)->path();
}

TEST_F(FileDestinationTest, ARecordTheEncodingCannotWriteIsRejectedWithoutItsValue) {
  auto c = make("encoding: windows-1252\n");
  Outcome o = send(*c, 5, "Łukasz");
  EXPECT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_EQ(o.text.find("ukasz"), std::string::npos) << o.text;
  EXPECT_TRUE(names().empty());
}

}  // namespace
}  // namespace relais::file
