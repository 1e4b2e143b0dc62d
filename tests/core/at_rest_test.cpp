// Encryption at rest (core/at_rest.h, docs/security.md "Encryption at rest"): the cipher and its
// keys, the store's encrypted columns read back in clear, nothing of a known value in the file's
// bytes, tampered and unknown-key values refused cleanly, the rekey (interrupted, resumed, from
// plain text), the erasure on encrypted rows, and a hub that delivers after a restart from an
// encrypted store.

#include <sqlite3.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

#include "connectors/registry.h"
#include "core/at_rest.h"
#include "core/clock.h"
#include "core/console_store.h"
#include "core/crypto.h"
#include "core/ids.h"
#include "core/store.h"
#include "routing/hub.h"
#include "routing/hub_config.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

constexpr Millis kT0 = 1'700'000'000'000;
std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// One raw SQLite connection to the store file (not through the store), for what is on disk.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("open");
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  std::vector<std::string> column(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const auto* p = sqlite3_column_text(st, 0);
      out.emplace_back(p ? reinterpret_cast<const char*>(p) : "");
    }
    sqlite3_finalize(st);
    return out;
  }
  void exec(const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }
  void checkpoint() {
    EXPECT_EQ(sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr),
              SQLITE_OK);
  }

 private:
  sqlite3* db_ = nullptr;
};

// --- the cipher ---------------------------------------------------------------------------------

TEST(AtRestCipher, SealsWithANonceAndOpensOnlyWithTheSameKeyAndRecord) {
  auto c = cipher({"A", "B"}, "A");
  std::string s1, s2, plain;
  ASSERT_TRUE(c->seal(body_aad("01MSG"), "{\"nom\":\"DUPONT\"}", s1));
  ASSERT_TRUE(c->seal(body_aad("01MSG"), "{\"nom\":\"DUPONT\"}", s2));
  EXPECT_EQ(s1.rfind("enc1:A:", 0), 0u) << s1;
  EXPECT_NE(s1, s2) << "a random nonce per value";
  EXPECT_EQ(s1.find("DUPONT"), std::string::npos);
  ASSERT_TRUE(c->open(body_aad("01MSG"), s1, plain).ok);
  EXPECT_EQ(plain, "{\"nom\":\"DUPONT\"}");
  // Another record's identity: the value does not move.
  Status moved = c->open(body_aad("01OTHER"), s1, plain);
  EXPECT_FALSE(moved.ok);
  EXPECT_NE(moved.detail.find("tag mismatch"), std::string::npos) << moved.detail;
  EXPECT_TRUE(plain.empty());
  // One changed character of the ciphertext.
  std::string tampered = s1;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  Status t = c->open(body_aad("01MSG"), tampered, plain);
  EXPECT_FALSE(t.ok);
  EXPECT_EQ(t.detail.rfind("payload cannot be decrypted: tag mismatch", 0), 0u) << t.detail;
  // A key that is not configured.
  auto only_b = cipher({"B"}, "B");
  Status unknown = only_b->open(body_aad("01MSG"), s1, plain);
  EXPECT_FALSE(unknown.ok);
  EXPECT_NE(unknown.detail.find("key A unknown"), std::string::npos) << unknown.detail;
  // Plain values (legacy rows) read as they are; "" stays "".
  ASSERT_TRUE(only_b->open(body_aad("x"), "{\"a\":1}", plain).ok);
  EXPECT_EQ(plain, "{\"a\":1}");
  ASSERT_TRUE(c->seal(body_aad("x"), "", s1));
  EXPECT_EQ(s1, "");
  EXPECT_FALSE(AtRestCipher::open_with(nullptr, body_aad("x"), s2, plain).ok);
  EXPECT_FALSE(c->open(body_aad("x"), "enc1:A:not*base64", plain).ok);
}

TEST(AtRestCipher, Base64RoundTripsAndRefusesForeignCharacters) {
  std::string out;
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    ASSERT_TRUE(base64_decode(base64_encode(s), out)) << s;
    EXPECT_EQ(out, s);
  }
  EXPECT_EQ(base64_encode("abcd"), "YWJjZA==");
  EXPECT_FALSE(base64_decode("YWJj ZA=", out));
  EXPECT_FALSE(base64_decode("YW=jZA==", out));
  EXPECT_FALSE(base64_decode("YWJ", out));
}

class KeyFiles : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content, mode_t mode) {
    std::string p = dir_.file(name);
    std::ofstream(p, std::ios::binary) << content;
    ::chmod(p.c_str(), mode);
    return p;
  }
  TempDir dir_;
};

TEST_F(KeyFiles, RawHexAndBase64FilesAndVariablesGiveTheSameKey) {
  std::string raw;
  for (size_t i = 0; i < 32; ++i) {
    raw += static_cast<char>(std::stoi(std::string(kKeyA).substr(2 * i, 2), nullptr, 16));
  }
  ::setenv("RELAIS_TEST_AT_REST_KEY", base64_encode(raw).c_str(), 1);
  AtRestSettings s;
  s.active = "raw";
  s.keys = {{"raw", write("raw.key", raw, 0600), ""},
            {"hex", write("hex.key", std::string(kKeyA) + "\n", 0400), ""},
            {"b64", write("b64.key", base64_encode(raw) + "\n", 0600), ""},
            {"env", "", "RELAIS_TEST_AT_REST_KEY"}};
  auto c = load_at_rest_cipher(s);
  ASSERT_TRUE(c);
  std::string sealed, plain;
  ASSERT_TRUE(c->seal("aad", "secret", sealed));
  // The same bytes under four ids: re-label the value and open it with each.
  for (const char* id : {"hex", "b64", "env"}) {
    std::string relabelled =
        "enc1:" + std::string(id) + sealed.substr(std::string("enc1:raw").size());
    ASSERT_TRUE(c->open("aad", relabelled, plain).ok) << id;
    EXPECT_EQ(plain, "secret");
  }
  ::unsetenv("RELAIS_TEST_AT_REST_KEY");
  EXPECT_FALSE(load_at_rest_cipher(AtRestSettings{}));
}

TEST_F(KeyFiles, AKeyFileOthersMayReadIsRefusedAtStartUp) {
  AtRestSettings s;
  s.active = "k1";
  s.keys = {{"k1", write("k1.key", std::string(kKeyA), 0644), ""}};
  try {
    load_at_rest_cipher(s);
    FAIL() << "a 0644 key file was accepted";
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("permissions 0644"), std::string::npos) << what;
    EXPECT_NE(what.find("too open"), std::string::npos) << what;
    EXPECT_EQ(what.find(kKeyA), std::string::npos) << "never the key";
  }
  ::chmod(dir_.file("k1.key").c_str(), 0640);
  EXPECT_THROW(load_at_rest_cipher(s), std::runtime_error);
  ::chmod(dir_.file("k1.key").c_str(), 0600);
  EXPECT_TRUE(load_at_rest_cipher(s));
  // Wrong length or form, a missing variable, an active key that is not configured.
  s.keys = {{"k1", write("short.key", "0011", 0600), ""}};
  try {
    load_at_rest_cipher(s);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("32-byte key"), std::string::npos) << e.what();
  }
  s.keys = {{"k1", "", "RELAIS_TEST_AT_REST_UNSET"}};
  EXPECT_THROW(load_at_rest_cipher(s), std::runtime_error);
  s.keys = {{"k2", write("k2.key", std::string(kKeyB), 0600), ""}};
  try {
    load_at_rest_cipher(s);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'k1' is not one of"), std::string::npos) << e.what();
  }
}

bool has_error(const std::vector<ConfigError>& errors, const std::string& text) {
  for (const auto& e : errors) {
    if (e.message.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(AtRestConfig, TheEncryptionBlockIsValidated) {
  Registries reg;
  const std::string head = "store:\n  path: r.db\n  encryption:\n    active: k2\n    keys:\n";
  const std::string tail = "sources:\n  s:\n    type: $.t\n";
  HubConfig cfg;
  std::vector<ConfigError> errors;
  EXPECT_FALSE(load_hub_config_text(head + "      - {id: k1, file: k1.key}\n" + tail, "t.yaml",
                                    "/etc/relais", reg.connectors, cfg, errors));
  EXPECT_TRUE(has_error(errors, "'k2' is not the id")) << errors.size();
  errors.clear();
  EXPECT_FALSE(load_hub_config_text(head + "      - {id: k2, file: k.key, env: K}\n" + tail,
                                    "t.yaml", "/etc/relais", reg.connectors, cfg, errors));
  EXPECT_TRUE(has_error(errors, "exactly one of file or env"));
  errors.clear();
  HubConfig ok;
  ASSERT_TRUE(load_hub_config_text(
      head + "      - {id: k1, env: K1}\n      - {id: k2, file: k2.key}\n" + tail, "t.yaml",
      "/etc/relais", reg.connectors, ok, errors))
      << (errors.empty() ? "" : errors[0].to_string());
  EXPECT_EQ(ok.store_encryption.active, "k2");
  ASSERT_EQ(ok.store_encryption.keys.size(), 2u);
  EXPECT_EQ(ok.store_encryption.keys[1].file, "/etc/relais/k2.key");
  EXPECT_EQ(ok.store_encryption.keys[0].env, "K1");
  HubConfig none;
  ASSERT_TRUE(load_hub_config_text("store:\n  path: r.db\n" + tail, "t.yaml", "/etc/relais",
                                   reg.connectors, none, errors));
  EXPECT_FALSE(none.store_encryption.enabled());
}

// --- the store ----------------------------------------------------------------------------------

class AtRestStore : public ::testing::Test {
 protected:
  AtRestStore() : clock_(kT0), ids_(clock_) {}
  void TearDown() override {
    if (store_) store_->close();
  }
  void open(std::shared_ptr<const AtRestCipher> c) {
    if (store_) store_->close();
    store_.reset();
    StoreOptions o;
    o.path = path();
    o.synchronous_full = false;  // nothing here is about power loss
    o.cipher = std::move(c);
    store_ = open_sqlite_store(o);
  }
  std::string path() const { return dir_.file("relais.db"); }

  std::string add(const std::string& person, const std::string& correlation = "individu:1") {
    return add_personal(ids_, *store_, kT0, person, correlation);
  }
  void expect_clear(const std::string& id, const std::string& person) {
    relais::testing::expect_clear(*store_, id, person);
  }
  // Every stored value of the three columns (raw, from the file).
  std::vector<std::string> stored_values() {
    RawDb db(path());
    auto out = db.column("SELECT body FROM messages");
    for (auto& v : db.column("SELECT payload FROM deliveries WHERE payload IS NOT NULL"))
      out.push_back(v);
    for (auto& v : db.column("SELECT excerpt FROM attempts WHERE excerpt <> ''")) out.push_back(v);
    return out;
  }

  TempDir dir_;
  ManualClock clock_;
  IdGenerator ids_;
  std::unique_ptr<Store> store_;
};

TEST_F(AtRestStore, NothingOfAKnownValueIsInTheFileAndEverythingReadsBackClear) {
  open(cipher({"A"}, "A"));
  std::string id = add("ZOLTAN-BRUCKNER");
  store_->flush();
  expect_clear(id, "ZOLTAN-BRUCKNER");
  for (const auto& v : stored_values()) EXPECT_EQ(v.rfind("enc1:A:", 0), 0u) << v;
  EXPECT_EQ(stored_values().size(), 3u);
  // The WAL holds the new pages until a checkpoint, the main file after it: neither has the name.
  EXPECT_FALSE(file_bytes(path() + "-wal").empty());
  EXPECT_EQ(file_bytes(path() + "-wal").find("ZOLTAN"), std::string::npos);
  {
    RawDb db(path());
    db.checkpoint();
  }
  EXPECT_EQ(file_bytes(path()).find("ZOLTAN"), std::string::npos);
  EXPECT_EQ(file_bytes(path() + "-wal").find("ZOLTAN"), std::string::npos);
  // Reopened with the key: still clear.
  open(cipher({"A"}, "A"));
  expect_clear(id, "ZOLTAN-BRUCKNER");
  auto m = store_->message_by_seq(1);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->body, "{\"nom\":\"ZOLTAN-BRUCKNER\"}");
  // The support desk reads the last excerpt (for its explanation) through the same key.
  {
    auto desk =
        open_sqlite_console_store(path(), clock_, StoreAccess::ReadOnly, cipher({"A"}, "A"));
    auto items = desk->desk(DeskFilter{});
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].last_excerpt, "echo: ZOLTAN-BRUCKNER");
    auto without = open_sqlite_console_store(path(), clock_, StoreAccess::ReadOnly);
    EXPECT_EQ(without->desk(DeskFilter{}).at(0).last_excerpt, "") << "undecryptable: nothing";
  }
  store_->close();
  EXPECT_EQ(file_bytes(path()).find("ZOLTAN"), std::string::npos);
  // Control: the same without encryption does put the name in the file (the test can fail).
  open(nullptr);
  add("ZOLTAN-PLAIN");
  store_->close();
  EXPECT_NE(file_bytes(path()).find("ZOLTAN-PLAIN"), std::string::npos);
}

TEST_F(AtRestStore, RekeyEncryptsALegacyPlainStoreAndSkipsWhatItCannotRead) {
  open(nullptr);
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(add("LEGACY-" + std::to_string(i)));
  store_->flush();
  EXPECT_EQ(store_->rekey_remaining(), 150);
  RekeyProgress p;
  EXPECT_EQ(store_->rekey(RekeyRequest{}, p, nullptr).http_status, 409) << "no key, no rekey";
  open(cipher({"A"}, "A"));
  expect_clear(ids[7], "LEGACY-7");  // plain rows still read
  ASSERT_TRUE(store_->rekey(RekeyRequest{7}, p, nullptr).ok);
  EXPECT_TRUE(p.finished);
  EXPECT_EQ(p.done, 150);
  EXPECT_EQ(p.remaining, 0);
  store_->close();
  EXPECT_EQ(file_bytes(path()).find("LEGACY-"), std::string::npos);
  EXPECT_EQ(file_bytes(path() + "-wal").find("LEGACY-"), std::string::npos);
  // A value under a key that is gone is left as it is and counted.
  open(cipher({"A"}, "A"));
  std::string lost = add("PERDU");
  store_->flush();
  open(cipher({"B"}, "B"));
  ASSERT_TRUE(store_->rekey(RekeyRequest{}, p, nullptr).ok);
  EXPECT_TRUE(p.finished);
  EXPECT_EQ(p.unreadable, 153);
  EXPECT_EQ(p.remaining, 153);
}

// --- the hub: delivery after a restart from an encrypted store ----------------------------------

class AtRestHub : public ::testing::Test {
 protected:
  std::unique_ptr<Hub> hub(const std::string& keys_yaml) {
    std::string yaml =
        "store:\n  path: relais.db\n  synchronous: normal\n" + keys_yaml +
        "sources:\n  app:\n    type: $.type\n    correlation: \"{$.key}\"\n"
        "connectors:\n  sink:\n    connector: http\n    url: http://127.0.0.1:" +
        std::to_string(sink_.port()) +
        "/in\n    retry:\n      initial: 1s\n      max: 1s\n"
        "routes:\n  - name: r\n    source: app\n    to:\n      - destination: sink\n";
    HubConfig cfg;
    std::vector<ConfigError> errors;
    if (!load_hub_config_text(yaml, "t.yaml", dir_.path(), registries_.connectors, cfg, errors)) {
      ADD_FAILURE() << errors.at(0).to_string();
      return nullptr;
    }
    config_ = std::make_unique<HubConfig>(std::move(cfg));
    return std::make_unique<Hub>(*config_, registries_.connectors, SystemClock::instance());
  }
  std::string key_file(const std::string& name, const char* hex) {
    std::string p = dir_.file(name);
    std::ofstream(p) << hex << "\n";
    ::chmod(p.c_str(), 0600);
    return p;
  }
  TempDir dir_;
  tools::HttpSink sink_;
  Registries registries_;
  std::unique_ptr<HubConfig> config_;
};

TEST_F(AtRestHub, APendingDeliveryIsSentAfterARestartAndAnUnknownKeyIsRejectedClearly) {
  key_file("a.key", kKeyA);
  key_file("b.key", kKeyB);
  const std::string with_a =
      "  encryption:\n    active: A\n    keys:\n      - {id: A, file: a.key}\n";
  const std::string body = "{\"type\":\"rdv\",\"key\":\"k1\",\"nom\":\"ODILE-FERRAND\"}";
  // First run: the partner is down; the delivery stays retrying in the encrypted store (next
  // attempt within a second).
  sink_.set_responder([](const tools::SinkRequest&) {
    tools::SinkResponse r;
    r.status = 503;
    return r;
  });
  auto h = hub(with_a);
  ASSERT_TRUE(h);
  h->start();
  AcceptResponse a = h->accept(AcceptRequest{"app", body, "", {}});
  ASSERT_EQ(a.status, 202) << a.detail;
  ASSERT_TRUE(wait_until([&] { return sink_.total() >= 1; }, 10000));
  h->stop();
  h.reset();
  EXPECT_EQ(file_bytes(dir_.file("relais.db")).find("ODILE"), std::string::npos);
  // Second run, partner up: the delivery loaded from the store goes out with the clear body.
  sink_.set_responder([](const tools::SinkRequest&) { return tools::SinkResponse{}; });
  h = hub(with_a);
  ASSERT_TRUE(h);
  h->start();
  ASSERT_TRUE(wait_until([&] { return sink_.count() >= 1; }, 10000));
  auto reqs = sink_.requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs.back().body, body);
  ASSERT_TRUE(wait_until([&] {
    auto d = h->store().delivery(1);
    return d && d->state == DeliveryState::Delivered;
  }));
  // A second message stays pending (partner down), then relais restarts with key B only: the
  // delivery is refused with the reason, never sent.
  sink_.set_responder([](const tools::SinkRequest&) {
    tools::SinkResponse r;
    r.status = 503;
    return r;
  });
  size_t sent = sink_.total();
  ASSERT_EQ(h->accept(AcceptRequest{"app", body, "", {}}).status, 202);
  ASSERT_TRUE(wait_until([&] { return sink_.total() >= sent + 1; }, 10000));
  h->stop();
  h.reset();
  sink_.set_responder([](const tools::SinkRequest&) { return tools::SinkResponse{}; });
  sent = sink_.total();
  h = hub("  encryption:\n    active: B\n    keys:\n      - {id: B, file: b.key}\n");
  ASSERT_TRUE(h);
  h->start();
  ASSERT_TRUE(wait_until(
      [&] {
        auto d = h->store().delivery(2);
        return d && d->state == DeliveryState::Dead;
      },
      10000));
  auto d = h->store().delivery(2);
  EXPECT_NE(d->last_text.find("payload cannot be decrypted: key A unknown"), std::string::npos)
      << d->last_text;
  EXPECT_EQ(sink_.total(), sent) << "nothing was sent";
  h->stop();
}

}  // namespace
}  // namespace relais::testing
