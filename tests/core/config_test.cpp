// Hub configuration loading: a valid file, and every kind of error with its file, line, column
// and dotted key; environment and file references; tokens kept only as SHA-256.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "connectors/registry.h"
#include "core/crypto.h"
#include "core/tls_client.h"
#include "routing/hub_config.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

using relais::testing::TempDir;

const ConnectorRegistry& registry() {
  static const ConnectorRegistry r = [] {
    ConnectorRegistry reg;
    register_builtin_connectors(reg);
    return reg;
  }();
  return r;
}

// The smallest valid configuration; tests append to it (lines 1-5).
const std::string kMinimal =
    "store:\n"
    "  path: relais.db\n"
    "sources:\n"
    "  s1:\n"
    "    type: $.event\n";

struct Loaded {
  bool ok = false;
  HubConfig config;
  std::vector<ConfigError> errors;
};

Loaded load(const std::string& text, const std::string& base_dir = "/etc/relais") {
  Loaded l;
  EXPECT_NO_THROW(
      l.ok = load_hub_config_text(text, "relais.yaml", base_dir, registry(), l.config, l.errors))
      << text;
  EXPECT_EQ(l.ok, l.errors.empty());
  return l;
}

std::string all(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.to_string() + "\n";
  return out;
}

// The one error for `key` (fails the test when there is none).
ConfigError error_for(const Loaded& l, const std::string& key) {
  for (const auto& e : l.errors) {
    if (e.key == key) return e;
  }
  ADD_FAILURE() << "no error for key " << key << "; errors:\n" << all(l.errors);
  return {};
}

TEST(Config, ValidConfigurationLoads) {
  const std::string text =
      "server:\n"
      "  address: 0.0.0.0\n"
      "  port: 8081\n"
      "  max_body: 2MiB\n"
      "  request_timeout: 45s\n"
      "store:\n"
      "  path: data/relais.db\n"
      "  synchronous: normal\n"
      "  max_batch: 500\n"
      "log:\n"
      "  level: debug\n"
      "auth:\n"
      "  tokens:\n"
      "    - name: ops\n"
      "      token: abcdefghijklmnop1234\n"
      "      role: admin\n"
      "    - name: cms\n"
      "      token_sha256: " +
      std::string(64, 'a') +
      "\n"
      "      sources: [cms76]\n"
      "sources:\n"
      "  cms76:\n"
      "    type: $.event\n"
      "    correlation: \"rdv:{$.rdv.id}\"\n"
      "    idempotency: $.id\n"
      "    keep_headers: [x-trace]\n"
      "connectors:\n"
      "  sandbox:\n"
      "    connector: http\n"
      "    url: http://127.0.0.1:9/cms76/{$.event}\n"
      "    method: PUT\n"
      "    concurrency: 2\n"
      "    on_dead: release\n"
      "    timeout: 1500ms\n"
      "    retry:\n"
      "      initial: 500ms\n"
      "      max: 1m\n"
      "      factor: 3\n"
      "      max_attempts: 5\n"
      "      max_age: 2h\n"
      "  other:\n"
      "    connector: http\n"
      "    url: https://example.org/x\n"
      "routes:\n"
      "  - name: r1\n"
      "    source: cms76\n"
      "    type: [\"rdv.*\", demande.created]\n"
      "    when: {path: $.rdv.emplacement, equals: CMS}\n"
      "    to:\n"
      "      - destination: sandbox\n"
      "        mapping: m1\n"
      "      - destination: other\n"
      "  - name: r2\n"
      "    source: cms76\n"
      "    type: \"*\"\n"
      "    to: [{destination: other}]\n";
  Loaded l = load(text, "/etc/relais");
  ASSERT_TRUE(l.ok) << all(l.errors);
  const HubConfig& c = l.config;
  EXPECT_EQ(c.file, "relais.yaml");
  EXPECT_EQ(c.address, "0.0.0.0");
  EXPECT_EQ(c.port, 8081);
  EXPECT_EQ(c.max_body, 2 * 1024 * 1024);
  EXPECT_EQ(c.request_timeout_ms, 45000);
  EXPECT_EQ(c.threads, 64);                               // default
  EXPECT_EQ(c.store_path, "/etc/relais/data/relais.db");  // relative to the base dir
  EXPECT_FALSE(c.store_sync_full);
  EXPECT_EQ(c.store_max_batch, 500);
  EXPECT_EQ(c.log_level, "debug");

  ASSERT_EQ(c.tokens.size(), 2u);
  EXPECT_EQ(c.tokens[0].name, "ops");
  EXPECT_EQ(c.tokens[0].role, "admin");
  EXPECT_EQ(c.tokens[0].sha256, sha256_hex("abcdefghijklmnop1234"));
  EXPECT_EQ(c.tokens[1].role, "system");  // default
  EXPECT_EQ(c.tokens[1].sha256, std::string(64, 'a'));
  EXPECT_EQ(c.tokens[1].sources, std::vector<std::string>{"cms76"});

  ASSERT_EQ(c.sources.count("cms76"), 1u);
  const SourceConfig& s = c.sources.at("cms76");
  auto body = nlohmann::json::parse(R"({"event":"rdv.planned","id":"e1","rdv":{"id":5}})");
  std::string out, err;
  ASSERT_TRUE(s.type.render(body, out, err)) << err;
  EXPECT_EQ(out, "rdv.planned");
  ASSERT_EQ(s.correlation.size(), 1u);
  ASSERT_TRUE(s.correlation[0].render(body, out, err)) << err;
  EXPECT_EQ(out, "rdv:5");
  ASSERT_TRUE(s.idempotency.has_value());
  EXPECT_EQ(*s.idempotency->find(body), "e1");
  EXPECT_EQ(s.keep_headers, std::vector<std::string>{"x-trace"});

  ASSERT_EQ(c.destinations.size(), 2u);
  const DestinationConfig& d = c.destinations.at("sandbox");
  EXPECT_EQ(d.connector, "http");
  EXPECT_EQ(d.concurrency, 2);
  EXPECT_FALSE(d.hold_on_dead);
  EXPECT_EQ(d.retry.initial_ms, 500);
  EXPECT_EQ(d.retry.max_ms, 60000);
  EXPECT_DOUBLE_EQ(d.retry.factor, 3.0);
  EXPECT_EQ(d.retry.max_attempts, 5);
  EXPECT_EQ(d.retry.max_age_ms, 2 * 3600 * 1000);
  EXPECT_EQ(d.settings.str("method"), "PUT");
  EXPECT_EQ(d.settings.duration_ms("timeout"), 1500);
  EXPECT_EQ(d.settings.duration_ms("connect_timeout"), 5000);  // the connector's default
  const DestinationConfig& o = c.destinations.at("other");
  EXPECT_EQ(o.concurrency, 4);  // defaults
  EXPECT_TRUE(o.hold_on_dead);
  EXPECT_EQ(o.retry.initial_ms, 1000);
  EXPECT_EQ(o.retry.max_attempts, 10);

  ASSERT_EQ(c.routes.size(), 2u);
  const RouteConfig& r = c.routes[0];
  EXPECT_EQ(r.name, "r1");
  EXPECT_EQ(r.source, "cms76");
  EXPECT_EQ(r.types, (std::vector<std::string>{"rdv.*", "demande.created"}));
  ASSERT_TRUE(r.when);
  EXPECT_TRUE(r.when->matches(nlohmann::json::parse(R"({"rdv":{"emplacement":"CMS"}})")));
  EXPECT_FALSE(r.when->matches(nlohmann::json::parse(R"({"rdv":{"emplacement":"MSA"}})")));
  ASSERT_EQ(r.to.size(), 2u);
  EXPECT_EQ(r.to[0].destination, "sandbox");
  EXPECT_EQ(r.to[0].mapping, "m1");
  EXPECT_EQ(r.to[1].destination, "other");
  EXPECT_EQ(r.to[1].mapping, "");
  EXPECT_EQ(c.routes[1].types, std::vector<std::string>{"*"});
  EXPECT_FALSE(c.routes[1].when);
  EXPECT_TRUE(c.notices.empty());
}

TEST(Config, TheDemoConfigurationLoads) {
  std::ifstream in(std::string(RELAIS_SOURCE_DIR) + "/config/demo.yaml");
  ASSERT_TRUE(in.good());
  std::stringstream buf;
  buf << in.rdbuf();
  Loaded l = load(buf.str(), std::string(RELAIS_SOURCE_DIR) + "/config");
  EXPECT_TRUE(l.ok) << all(l.errors);
}

TEST(Config, UnknownTopLevelKeyIsLocated) {
  Loaded l = load(kMinimal + "bogus: 1\n");
  ASSERT_FALSE(l.ok);
  ASSERT_EQ(l.errors.size(), 1u) << all(l.errors);
  const ConfigError& e = l.errors[0];
  EXPECT_EQ(e.key, "bogus");
  EXPECT_EQ(e.file, "relais.yaml");
  EXPECT_EQ(e.line, 6);
  EXPECT_EQ(e.column, 1);
  EXPECT_NE(e.message.find("unknown key"), std::string::npos);
  EXPECT_NE(e.message.find("sources"), std::string::npos);  // lists the known keys
  EXPECT_EQ(e.to_string().rfind("relais.yaml:6:1: bogus: unknown key", 0), 0u) << e.to_string();
}

TEST(Config, UnknownKeyInsideADestinationIsLocated) {
  Loaded l = load(kMinimal +
                  "connectors:\n"                    // 6
                  "  sandbox:\n"                     // 7
                  "    connector: http\n"            // 8
                  "    url: http://127.0.0.1:9/x\n"  // 9
                  "    timout: 5s\n"                 // 10
                  "    retry:\n"                     // 11
                  "      initial: 1s\n"              // 12
                  "      intial: 2s\n");             // 13
  ASSERT_FALSE(l.ok);
  EXPECT_EQ(l.errors.size(), 2u) << all(l.errors);
  ConfigError e = error_for(l, "connectors.sandbox.timout");
  EXPECT_EQ(e.line, 10);
  EXPECT_EQ(e.column, 5);
  EXPECT_NE(e.message.find("timeout"), std::string::npos);  // the known keys include it
  e = error_for(l, "connectors.sandbox.retry.intial");
  EXPECT_EQ(e.line, 13);
  EXPECT_EQ(e.column, 7);
}

TEST(Config, WrongTypesAreLocated) {
  Loaded l = load(
      "server:\n"
      "  port: abc\n"
      "  request_timeout: 10 parsecs\n"
      "  max_body: lots\n" +
      kMinimal +
      "connectors:\n"                    // 10
      "  d1:\n"                          // 11
      "    connector: http\n"            // 12
      "    url: http://127.0.0.1:9/x\n"  // 13
      "    tls_verify: maybe\n"          // 14
      "    concurrency: two\n"           // 15
      "    headers: [a, b]\n");          // 16
  ASSERT_FALSE(l.ok);
  ConfigError e = error_for(l, "server.port");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 9);
  EXPECT_NE(e.message.find("'abc'"), std::string::npos) << e.message;
  e = error_for(l, "server.request_timeout");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 20);
  EXPECT_NE(e.message.find("'10 parsecs'"), std::string::npos) << e.message;
  e = error_for(l, "server.max_body");
  EXPECT_EQ(e.line, 4);
  e = error_for(l, "connectors.d1.tls_verify");
  EXPECT_EQ(e.line, 14);
  EXPECT_EQ(e.column, 17);
  e = error_for(l, "connectors.d1.concurrency");
  EXPECT_EQ(e.line, 15);
  e = error_for(l, "connectors.d1.headers");
  EXPECT_EQ(e.line, 16);
}

TEST(Config, OutOfRangeValues) {
  Loaded l = load(
      "server:\n"
      "  port: 70000\n" +
      kMinimal +
      "connectors:\n"
      "  d1:\n"
      "    connector: http\n"
      "    url: http://127.0.0.1:9/x\n"
      "    concurrency: 0\n"  // line 12
      "    retry:\n"
      "      factor: 0.5\n");
  ASSERT_FALSE(l.ok);
  ConfigError e = error_for(l, "server.port");
  EXPECT_EQ(e.line, 2);
  EXPECT_NE(e.message.find("out of range"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("65535"), std::string::npos) << e.message;
  e = error_for(l, "connectors.d1.concurrency");
  EXPECT_EQ(e.line, 12);
  EXPECT_NE(e.message.find("out of range"), std::string::npos) << e.message;
  e = error_for(l, "connectors.d1.retry.factor");
  EXPECT_NE(e.message.find("out of range"), std::string::npos) << e.message;
}

TEST(Config, MissingRequiredKeys) {
  Loaded l = load("server:\n  port: 1\n");
  ASSERT_FALSE(l.ok);
  error_for(l, "store");
  error_for(l, "sources");

  l = load(
      "store:\n"
      "  synchronous: full\n"
      "sources:\n"
      "  s1:\n"
      "    idempotency: $.id\n"
      "connectors:\n"
      "  d1:\n"
      "    connector: http\n"
      "  d2:\n"
      "    url: http://x/\n"
      "routes:\n"
      "  - name: r\n"
      "    source: s1\n");
  ASSERT_FALSE(l.ok);
  ConfigError e = error_for(l, "store.path");
  EXPECT_EQ(e.line, 2);  // the mapping that lacks the key
  EXPECT_NE(e.message.find("required"), std::string::npos);
  error_for(l, "sources.s1.type");
  e = error_for(l, "connectors.d1.url");
  EXPECT_EQ(e.line, 8);
  e = error_for(l, "connectors.d2.connector");
  EXPECT_EQ(e.line, 10);
  error_for(l, "routes[0].to");
}

TEST(Config, TheStoreEngineSaysWhatItNeeds) {
  const std::string rest =
      "sources:\n  s1: {type: $.t}\n"
      "connectors:\n  d1: {connector: http, url: 'http://x/'}\n"
      "routes:\n  - {name: r, source: s1, to: [{destination: d1}]}\n";
  Loaded l = load("store: {kind: postgresql}\n" + rest);
  ASSERT_FALSE(l.ok);
  EXPECT_NE(error_for(l, "store.uri").message.find("required"), std::string::npos);
  EXPECT_NE(error_for(l, "store.state_dir").message.find("required"), std::string::npos);

  l = load(
      "store: {kind: postgresql, uri: 'postgresql://relais@db1/relais', password_env: "
      "RELAIS_DB_PASSWORD, state_dir: data}\n" +
      rest);
  ASSERT_TRUE(l.ok) << all(l.errors);
  EXPECT_EQ(l.config.store.kind, "postgresql");
  EXPECT_EQ(l.config.store.uri, "postgresql://relais@db1/relais");
  EXPECT_EQ(l.config.store.password_env, "RELAIS_DB_PASSWORD");
  EXPECT_EQ(l.config.store.state_dir, "/etc/relais/data");  // relative to the base dir
  EXPECT_EQ(l.config.store.path, "");

  l = load("store: {path: relais.db}\n" + rest);
  ASSERT_TRUE(l.ok) << all(l.errors);
  EXPECT_EQ(l.config.store.kind, "sqlite");  // the default
  EXPECT_EQ(l.config.store.path, "/etc/relais/relais.db");

  l = load("store: {kind: oracle, path: x.db}\n" + rest);
  ASSERT_FALSE(l.ok);
  error_for(l, "store.kind");
}

TEST(Config, UnknownConnectorSourceAndDestination) {
  Loaded l = load(kMinimal +
                  "connectors:\n"              // 6
                  "  d1:\n"                    // 7
                  "    connector: ftp\n"       // 8
                  "    url: ftp://x\n"         // 9
                  "  d2:\n"                    // 10
                  "    connector: http\n"      // 11
                  "    url: http://x/\n"       // 12
                  "routes:\n"                  // 13
                  "  - name: r1\n"             // 14
                  "    source: nosuch\n"       // 15
                  "    to:\n"                  // 16
                  "      - destination: d2\n"  // 17
                  "      - destination: d9\n"  // 18
                  "  - name: r2\n"             // 19
                  "    source: s1\n"           // 20
                  "    to: [{destination: d1}]\n");
  ASSERT_FALSE(l.ok);
  ConfigError e = error_for(l, "connectors.d1.connector");
  EXPECT_EQ(e.line, 8);
  EXPECT_EQ(e.column, 16);
  EXPECT_NE(e.message.find("'ftp'"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("http"), std::string::npos) << e.message;  // names the known kinds
  e = error_for(l, "routes[0].source");
  EXPECT_EQ(e.line, 15);
  EXPECT_EQ(e.column, 13);
  EXPECT_NE(e.message.find("'nosuch'"), std::string::npos);
  e = error_for(l, "routes[0].to[1].destination");
  EXPECT_EQ(e.line, 18);
  EXPECT_NE(e.message.find("'d9'"), std::string::npos);
  for (const auto& err : l.errors) {
    EXPECT_NE(err.key, "routes[0].to[0].destination") << err.to_string();
    // d1 is declared (with a bad connector): not reported again as an unknown destination.
    EXPECT_NE(err.key, "routes[1].to[0].destination") << err.to_string();
  }
}

TEST(Config, InvalidPredicateAndDuplicateRouteName) {
  Loaded l = load(kMinimal +
                  "connectors:\n"                                // 6
                  "  d1: {connector: http, url: 'http://x/'}\n"  // 7
                  "routes:\n"                                    // 8
                  "  - name: r1\n"                               // 9
                  "    source: s1\n"                             // 10
                  "    when: {path: $.a, regex: '(unclosed'}\n"  // 11
                  "    to: [{destination: d1}]\n"                // 12
                  "  - name: r1\n"                               // 13
                  "    source: s1\n"                             // 14
                  "    when: {path: a.b, equals: 1}\n"           // 15
                  "    to: [{destination: d1}]\n");
  ASSERT_FALSE(l.ok);
  ConfigError e = error_for(l, "routes[0].when.regex");
  EXPECT_EQ(e.line, 11);
  EXPECT_NE(e.message.find("invalid regular expression"), std::string::npos);
  e = error_for(l, "routes[1].when.path");
  EXPECT_EQ(e.line, 15);
  e = error_for(l, "routes[1].name");
  EXPECT_EQ(e.line, 13);
  EXPECT_EQ(e.column, 11);
  EXPECT_NE(e.message.find("'r1' is used twice"), std::string::npos) << e.message;
}

TEST(Config, EveryErrorIsReportedNotJustTheFirst) {
  Loaded l = load(
      "server: {port: x, colour: blue}\n"
      "store: {path: a.db, synchronous: sometimes}\n"
      "sources: {s1: {type: $.event, correlation: {a: 1}}}\n"
      "log: {level: loud}\n");
  ASSERT_FALSE(l.ok);
  error_for(l, "server.port");
  error_for(l, "server.colour");
  error_for(l, "store.synchronous");
  error_for(l, "sources.s1.correlation");
  ConfigError e = error_for(l, "log.level");
  EXPECT_NE(e.message.find("'loud' is not one of: debug, info, warn, error"), std::string::npos)
      << e.message;
  EXPECT_GE(l.errors.size(), 5u);
}

TEST(Config, YamlSyntaxErrorIsLocated) {
  Loaded l = load("store:\n  path: [unclosed\nsources: {}\n");
  ASSERT_FALSE(l.ok);
  ASSERT_EQ(l.errors.size(), 1u);
  EXPECT_NE(l.errors[0].message.find("YAML syntax error"), std::string::npos);
  EXPECT_GE(l.errors[0].line, 2);
  l = load("- a\n- b\n");
  ASSERT_FALSE(l.ok);
  EXPECT_NE(l.errors[0].message.find("mapping"), std::string::npos);
}

// max_attempts: 0 is documented as "no limit": accepted, with or without max_age.
TEST(Config, MaxAttemptsZeroMeansNoLimit) {
  Loaded l = load(kMinimal +
                  "connectors:\n"
                  "  d1:\n"
                  "    connector: http\n"
                  "    url: http://x/\n"
                  "    retry: {max_attempts: 0}\n");
  ASSERT_TRUE(l.ok) << all(l.errors);
  EXPECT_EQ(l.config.destinations.at("d1").retry.max_attempts, 0);
  EXPECT_EQ(l.config.destinations.at("d1").retry.max_age_ms, 0);
  EXPECT_FALSE(l.config.destinations.at("d1").retry.exhausted(1000000, 0, 1LL << 50));
  l = load(kMinimal +
           "connectors:\n"
           "  d1:\n"
           "    connector: http\n"
           "    url: http://x/\n"
           "    retry: {max_attempts: 0, max_age: 1d}\n");
  EXPECT_TRUE(l.ok) << all(l.errors);
  EXPECT_EQ(l.config.destinations.at("d1").retry.max_age_ms, 86400000);
  l = load(kMinimal +
           "connectors:\n"
           "  d1:\n"
           "    connector: http\n"
           "    url: http://x/\n"
           "    retry: {max_attempts: -1}\n");
  EXPECT_FALSE(l.ok);
}

// server.max_depth: declared (default 64), bounded.
TEST(Config, MaxDepth) {
  Loaded l = load(kMinimal);
  ASSERT_TRUE(l.ok) << all(l.errors);
  EXPECT_EQ(l.config.max_depth, 64);
  l = load("server: {max_depth: 10}\n" + kMinimal);
  ASSERT_TRUE(l.ok) << all(l.errors);
  EXPECT_EQ(l.config.max_depth, 10);
  l = load("server: {max_depth: 0}\n" + kMinimal);
  EXPECT_FALSE(l.ok);
  l = load("server: {max_depth: 100000}\n" + kMinimal);
  EXPECT_FALSE(l.ok);
}

TEST(Config, HttpConnectorChecks) {
  Loaded l = load(kMinimal +
                  "connectors:\n"                                    // 6
                  "  d1: {connector: http, url: 'ftp://x/'}\n"       // 7
                  "  d2: {connector: http, url: 'http://x/{$.a'}\n"  // 8
                  "  d3:\n"                                          // 9
                  "    connector: http\n"                            // 10
                  "    url: http://x/\n"                             // 11
                  "    basic_user: u\n"                              // 12
                  "    bearer_token: tttttttttttttttttttt\n"         // 13
                  "  d4: {connector: http, url: 'http://x/', tls: {client_key: k.pem}}\n"
                  "  d5: {connector: http, url: 'http://x/', method: BREW}\n");
  ASSERT_FALSE(l.ok);
  ConfigError e = error_for(l, "connectors.d1.url");
  EXPECT_NE(e.message.find("http(s)://"), std::string::npos);
  e = error_for(l, "connectors.d2.url");
  EXPECT_NE(e.message.find("unclosed"), std::string::npos);
  e = error_for(l, "connectors.d3");
  EXPECT_NE(e.message.find("not both"), std::string::npos);
  e = error_for(l, "connectors.d4.tls");
  EXPECT_NE(e.message.find("without client_certificate"), std::string::npos);
  e = error_for(l, "connectors.d5.method");
  EXPECT_NE(e.message.find("'BREW'"), std::string::npos);
}

class EnvConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("RELAIS_TEST_UNSET_VAR");
    ::setenv("RELAIS_TEST_PORT", "9123", 1);
  }
  void TearDown() override {
    ::unsetenv("RELAIS_TEST_PORT");
    ::unsetenv("RELAIS_TEST_TOKEN");
  }
};

TEST_F(EnvConfig, MissingVariableIsAnError) {
  Loaded l = load("server:\n  address: ${RELAIS_TEST_UNSET_VAR}\n" + kMinimal);
  ASSERT_FALSE(l.ok);
  ConfigError e = error_for(l, "server.address");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 12);
  EXPECT_NE(e.message.find("RELAIS_TEST_UNSET_VAR"), std::string::npos) << e.message;
}

TEST_F(EnvConfig, DefaultIsUsedWithANotice) {
  Loaded l = load(
      "server:\n  address: ${RELAIS_TEST_UNSET_VAR:-10.0.0.1}\n  port: "
      "${RELAIS_TEST_PORT:-1}\n" +
      kMinimal);
  ASSERT_TRUE(l.ok) << all(l.errors);
  EXPECT_EQ(l.config.address, "10.0.0.1");
  EXPECT_EQ(l.config.port, 9123);  // set: the environment wins, no notice
  ASSERT_EQ(l.config.notices.size(), 1u);
  EXPECT_NE(l.config.notices[0].find("RELAIS_TEST_UNSET_VAR"), std::string::npos);
  EXPECT_NE(l.config.notices[0].find("server.address"), std::string::npos);
  EXPECT_NE(l.config.notices[0].find("10.0.0.1"), std::string::npos);
}

TEST_F(EnvConfig, VariablesInsideLongerText) {
  Loaded l = load(kMinimal +
                  "connectors:\n"
                  "  d1:\n"
                  "    connector: http\n"
                  "    url: http://127.0.0.1:${RELAIS_TEST_PORT}/x/${RELAIS_TEST_UNSET_VAR:-}y\n");
  ASSERT_TRUE(l.ok) << all(l.errors);
  EXPECT_EQ(l.config.destinations.at("d1").settings.str("url"), "http://127.0.0.1:9123/x/y");
}

TEST_F(EnvConfig, SecretDefaultsAreNotShownInNotices) {
  Loaded l = load(kMinimal +
                  "auth:\n"
                  "  tokens:\n"
                  "    - name: demo\n"
                  "      token: ${RELAIS_TEST_UNSET_VAR:-a-default-token-value}\n");
  ASSERT_TRUE(l.ok) << all(l.errors);
  ASSERT_EQ(l.config.notices.size(), 1u);
  EXPECT_EQ(l.config.notices[0].find("a-default-token-value"), std::string::npos)
      << l.config.notices[0];
  EXPECT_EQ(l.config.tokens[0].sha256, sha256_hex("a-default-token-value"));
}

TEST_F(EnvConfig, TokenFromTheEnvironment) {
  ::setenv("RELAIS_TEST_TOKEN", "0123456789abcdefXYZ", 1);
  Loaded l = load(kMinimal +
                  "auth:\n"
                  "  tokens:\n"
                  "    - {name: a, token: '${RELAIS_TEST_TOKEN}', role: support}\n");
  ASSERT_TRUE(l.ok) << all(l.errors);
  EXPECT_EQ(l.config.tokens[0].sha256, sha256_hex("0123456789abcdefXYZ"));
  EXPECT_EQ(l.config.tokens[0].role, "support");
}

TEST(Config, FileReferenceIsReadRelativeToTheBaseDir) {
  TempDir dir;
  { std::ofstream(dir.file("token.txt")) << "file-token-0123456789\n"; }
  std::filesystem::create_directory(dir.file("secrets"));
  { std::ofstream(dir.file("secrets/pw")) << "s3cret"; }
  Loaded l = load(kMinimal +
                      "auth:\n"
                      "  tokens:\n"
                      "    - name: a\n"
                      "      token: '@file:token.txt'\n"
                      "connectors:\n"
                      "  d1:\n"
                      "    connector: http\n"
                      "    url: http://x/\n"
                      "    basic_user: me\n"
                      "    basic_password: '@file:" +
                      dir.file("secrets/pw") + "'\n",
                  dir.path());
  ASSERT_TRUE(l.ok) << all(l.errors);
  // The trailing newline of the file is not part of the token.
  EXPECT_EQ(l.config.tokens[0].sha256, sha256_hex("file-token-0123456789"));
  EXPECT_EQ(l.config.destinations.at("d1").settings.str("basic_password"), "s3cret");

  Loaded missing = load(kMinimal +
                            "auth:\n"
                            "  tokens:\n"
                            "    - name: a\n"
                            "      token: '@file:nope.txt'\n",
                        dir.path());
  ASSERT_FALSE(missing.ok);
  ConfigError e = error_for(missing, "auth.tokens[0].token");
  EXPECT_EQ(e.line, 9);
  EXPECT_NE(e.message.find(dir.file("nope.txt")), std::string::npos) << e.message;
}

TEST(Config, TokenRules) {
  Loaded l = load(kMinimal +
                  "auth:\n"                                    // 6
                  "  tokens:\n"                                // 7
                  "    - name: short\n"                        // 8
                  "      token: fifteen-chars!!\n"             // 9
                  "    - name: both\n"                         // 10
                  "      token: abcdefghijklmnopqrstuvwxyz\n"  // 11
                  "      token_sha256: " +
                  std::string(64, 'b') +
                  "\n"                                         // 12
                  "    - name: none\n"                         // 13
                  "      role: admin\n"                        // 14
                  "    - name: badhash\n"                      // 15
                  "      token_sha256: abc\n"                  // 16
                  "    - name: badrole\n"                      // 17
                  "      token: abcdefghijklmnopqrstuvwxyz\n"  // 18
                  "      role: root\n");                       // 19
  ASSERT_FALSE(l.ok);
  ConfigError e = error_for(l, "auth.tokens[0].token");
  EXPECT_EQ(e.line, 9);
  EXPECT_EQ(e.column, 14);
  EXPECT_NE(e.message.find("16"), std::string::npos) << e.message;
  // The error never shows the token itself.
  for (const auto& err : l.errors) {
    EXPECT_EQ(err.to_string().find("fifteen-chars!!"), std::string::npos) << err.to_string();
    EXPECT_EQ(err.to_string().find("abcdefghijklmnopqrstuvwxyz"), std::string::npos);
  }
  error_for(l, "auth.tokens[1]");
  error_for(l, "auth.tokens[2]");
  e = error_for(l, "auth.tokens[3].token_sha256");
  EXPECT_EQ(e.line, 16);
  error_for(l, "auth.tokens[4].role");

  // Exactly 16 characters is enough.
  Loaded ok = load(kMinimal + "auth: {tokens: [{name: a, token: sixteen-chars!!!}]}\n");
  EXPECT_TRUE(ok.ok) << all(ok.errors);
}

TEST(Config, TokenIsKeptOnlyAsSha256) {
  const std::string token = "the-real-token-0123456789";
  Loaded l = load(kMinimal + "auth: {tokens: [{name: a, token: " + token + "}]}\n");
  ASSERT_TRUE(l.ok) << all(l.errors);
  ASSERT_EQ(l.config.tokens.size(), 1u);
  const TokenConfig& t = l.config.tokens[0];
  EXPECT_EQ(t.sha256, sha256_hex(token));
  EXPECT_EQ(t.sha256.size(), 64u);
  EXPECT_EQ(t.sha256.find(token), std::string::npos);
  EXPECT_EQ(t.name.find(token), std::string::npos);
  EXPECT_NE(t.sha256, token);
}

TEST(Config, CorrelationAsStringOrList) {
  Loaded l = load(
      "store: {path: a.db}\n"
      "sources:\n"
      "  one:\n"
      "    type: $.event\n"
      "    correlation: 'rdv:{$.rdv.id}'\n"
      "  many:\n"
      "    type: $.event\n"
      "    correlation:\n"
      "      - 'rdv:{$.rdv.id}'\n"
      "      - 'demande:{$.demande.numero}'\n"
      "      - $.key\n"
      "  none:\n"
      "    type: $.event\n");
  ASSERT_TRUE(l.ok) << all(l.errors);
  auto body = nlohmann::json::parse(R"({"demande":{"numero":"D-9"},"key":"k"})");
  const auto& one = l.config.sources.at("one").correlation;
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].text(), "rdv:{$.rdv.id}");
  const auto& many = l.config.sources.at("many").correlation;
  ASSERT_EQ(many.size(), 3u);
  std::string out, err;
  EXPECT_FALSE(many[0].render(body, out, err));  // no rdv: the next template is tried
  ASSERT_TRUE(many[1].render(body, out, err));
  EXPECT_EQ(out, "demande:D-9");
  ASSERT_TRUE(many[2].render(body, out, err));
  EXPECT_EQ(out, "k");
  EXPECT_TRUE(l.config.sources.at("none").correlation.empty());

  Loaded bad = load(
      "store: {path: a.db}\n"
      "sources:\n"
      "  s:\n"
      "    type: $.event\n"
      "    correlation:\n"
      "      - 'rdv:{$.rdv.id}'\n"
      "      - 'oops:{$.a'\n"
      "      - {a: 1}\n"
      "  t:\n"
      "    type: $.event\n"
      "    correlation: []\n");
  ASSERT_FALSE(bad.ok);
  int s_errors = 0;
  for (const auto& e : bad.errors) {
    if (e.key == "sources.s.correlation") ++s_errors;
  }
  EXPECT_EQ(s_errors, 2) << all(bad.errors);
  error_for(bad, "sources.t.correlation");
}

TEST(Config, BadTypeAndIdempotencyExpressions) {
  Loaded l = load(
      "store: {path: a.db}\n"
      "sources:\n"
      "  s:\n"
      "    type: 'x{$.a'\n"
      "    idempotency: id\n");
  ASSERT_FALSE(l.ok);
  ConfigError e = error_for(l, "sources.s.type");
  EXPECT_EQ(e.line, 4);
  e = error_for(l, "sources.s.idempotency");
  EXPECT_EQ(e.line, 5);
}

}  // namespace
}  // namespace relais

namespace relais {
namespace {

TEST(ConfigValues, DurationsAndSizes) {
  int64_t v = 0;
  EXPECT_TRUE(parse_duration_ms("500ms", v));
  EXPECT_EQ(v, 500);
  EXPECT_TRUE(parse_duration_ms("10s", v));
  EXPECT_EQ(v, 10000);
  EXPECT_TRUE(parse_duration_ms("10", v));  // seconds
  EXPECT_EQ(v, 10000);
  EXPECT_TRUE(parse_duration_ms("1.5s", v));
  EXPECT_EQ(v, 1500);
  EXPECT_TRUE(parse_duration_ms("5m", v));
  EXPECT_EQ(v, 300000);
  EXPECT_TRUE(parse_duration_ms("2h", v));
  EXPECT_EQ(v, 7200000);
  EXPECT_TRUE(parse_duration_ms("1d", v));
  EXPECT_EQ(v, 86400000);
  for (const char* bad : {"", "s", "10 parsecs", "10 s", "-5s", "10y", "ms10"}) {
    EXPECT_FALSE(parse_duration_ms(bad, v)) << bad;
  }
  EXPECT_TRUE(parse_size("512", v));
  EXPECT_EQ(v, 512);
  EXPECT_TRUE(parse_size("64KiB", v));
  EXPECT_EQ(v, 65536);
  EXPECT_TRUE(parse_size("1MiB", v));
  EXPECT_EQ(v, 1048576);
  EXPECT_TRUE(parse_size("2GiB", v));
  EXPECT_EQ(v, 2147483648LL);
  for (const char* bad : {"", "KiB", "1.5MiB", "10 MiB", "-1", "5TiB"}) {
    EXPECT_FALSE(parse_size(bad, v)) << bad;
  }
}

TEST(ConfigValues, HugeNumbersAreErrorsNotCrashes) {
  int64_t v = 0;
  bool ok = true;
  EXPECT_NO_THROW(ok = parse_size("99999999999999999999999", v));
  EXPECT_FALSE(ok);
  EXPECT_NO_THROW(ok = parse_size("99999999999GiB", v));
  EXPECT_FALSE(ok);
  EXPECT_FALSE(parse_duration_ms("99999999999999999999d", v));
  Loaded l = load(
      "server:\n"
      "  max_body: 99999999999999999999999\n"
      "  request_timeout: 99999999999999999999d\n"
      "  threads: 99999999999999999999999\n" +
      kMinimal);
  ASSERT_FALSE(l.ok);
  error_for(l, "server.max_body");
  error_for(l, "server.request_timeout");
  error_for(l, "server.threads");
}

}  // namespace
}  // namespace relais

namespace relais {
namespace {

// Documents of an unexpected shape are errors with a position, never exceptions.
TEST(ConfigShapes, ScalarsWhereMappingsBelongAreReported) {
  Registries registries;
  for (const char* text : {"store: {path: x.db}\nsources: {a: {type: $.e}}\nroutes:\n  - x\n",
                           "store: {path: x.db}\nsources: {a: {type: $.e}}\nroutes: [{name: r, "
                           "source: a, type: {a: b}, to: [{destination: d}]}]\n",
                           "store: {path: x.db}\nsources: a\n", "[1, 2]\n",
                           "store: {path: x.db}\nsources: {a: {type: $.e}}\nconnectors:\n  "
                           "? [x]\n  : {connector: http}\n"}) {
    HubConfig cfg;
    std::vector<ConfigError> errors;
    EXPECT_NO_THROW({
      EXPECT_FALSE(load_hub_config_text(text, "shape.yaml", "/tmp", registries.connectors, cfg,
                                        errors, &registries.enrichers))
          << text;
    });
    EXPECT_FALSE(errors.empty()) << text;
  }
}

}  // namespace
}  // namespace relais

namespace relais {
namespace {

// Trust settings (docs/security.md): signatures, trusted proxies, pseudonym key, free/busy scope.
TEST(Config, TrustSettingsLoadAndBadOnesAreLocated) {
  Loaded ok = load(
      "server:\n  trusted_proxies: [127.0.0.1, 10.0.0.0/8, \"fd00::/8\"]\n"
      "store:\n  path: relais.db\n"
      "privacy:\n  pseudonym_key_file: keys/pseudonym.key\n"
      "auth:\n  tokens:\n    - name: portail\n      token: portal-token-0123456789\n"
      "      free_busy_mailboxes: [\"*@cms76.fr\"]\n"
      "sources:\n  app:\n    type: $.event\n    signature:\n"
      "      secret: a-secret-of-sufficient-length\n      tolerance: 2m\n");
  ASSERT_TRUE(ok.ok) << all(ok.errors);
  EXPECT_EQ(ok.config.trusted_proxies.size(), 3u);
  EXPECT_EQ(ok.config.pseudonym_key_file, "/etc/relais/keys/pseudonym.key");
  EXPECT_EQ(ok.config.tokens.at(0).free_busy_mailboxes, std::vector<std::string>{"*@cms76.fr"});
  const auto& sig = ok.config.sources.at("app").signature;
  ASSERT_TRUE(sig.has_value());
  EXPECT_EQ(sig->header, "X-Signature");
  EXPECT_EQ(sig->timestamp_header, "X-Timestamp");
  EXPECT_EQ(sig->tolerance_ms, 120000);
  EXPECT_FALSE(ok.config.sources.at("app").signature->secret.empty());

  Loaded bad = load(
      "server:\n  trusted_proxies: [10.0.0.0/33, proxy.example]\n"
      "store:\n  path: relais.db\n"
      "sources:\n  app:\n    type: $.event\n    signature:\n      secret: short\n"
      "      scheme: md5\n");
  ASSERT_FALSE(bad.ok);
  EXPECT_NE(all(bad.errors).find("'10.0.0.0/33' is not an IP address"), std::string::npos)
      << all(bad.errors);
  EXPECT_NE(all(bad.errors).find("'proxy.example' is not an IP address"), std::string::npos);
  EXPECT_NE(error_for(bad, "sources.app.signature.secret").message.find("16 characters"),
            std::string::npos);
  error_for(bad, "sources.app.signature.scheme");
}

}  // namespace
}  // namespace relais

namespace relais {
namespace {

// server.tls, tokens bound to a client certificate, and the connectors' tls block.
TEST(Config, TlsKeysAreChecked) {
  Loaded l = load(
      "server:\n"
      "  tls:\n"
      "    certificate: /nonexistent/relais.pem\n"
      "    key: /nonexistent/relais.key\n"
      "    client_certificates: required\n"
      "auth:\n"
      "  tokens:\n"
      "    - {name: a, token: aaaaaaaaaaaaaaaaaaaa, client_certificate: 'zz:11'}\n"
      "    - {name: b, token: bbbbbbbbbbbbbbbbbbbb, client_certificate: '" +
      std::string(32, 'A') + ":" + std::string(32, 'b') + "'}\n" + kMinimal +
      "connectors:\n"
      "  d1: {connector: http, url: 'https://x/', tls: {client_certificate: c.p12, format: p12,"
      " client_key: k.pem}}\n"
      "  d2: {connector: http, url: 'https://x/', tls: {client_certificate: c.pem,"
      " client_key_password_file: p, client_key_password_env: P}}\n");
  ASSERT_FALSE(l.ok);
  EXPECT_NE(error_for(l, "server.tls.certificate").message.find("no such file"), std::string::npos);
  EXPECT_NE(error_for(l, "server.tls.key").message.find("no such file"), std::string::npos);
  EXPECT_NE(error_for(l, "server.tls.client_ca").message.find("needs client_ca"),
            std::string::npos);
  EXPECT_NE(error_for(l, "auth.tokens[0].client_certificate").message.find("64 hexadecimal"),
            std::string::npos);
  // A well-formed fingerprint still needs mutual TLS.
  EXPECT_NE(error_for(l, "auth.tokens[1].client_certificate").message.find("mutual TLS"),
            std::string::npos);
  EXPECT_NE(error_for(l, "connectors.d1.tls.client_key").message.find("PKCS#12"),
            std::string::npos);
  EXPECT_NE(error_for(l, "connectors.d2.tls").message.find("not both"), std::string::npos);
}

TEST(Config, FingerprintsAreNormalised) {
  EXPECT_EQ(normalize_fingerprint(std::string(32, 'A') + ":" + std::string(32, 'b')),
            std::string(32, 'a') + std::string(32, 'b'));
  EXPECT_EQ(normalize_fingerprint("AB:CD"), "");
  EXPECT_EQ(normalize_fingerprint(std::string(63, 'a') + "g"), "");
}

}  // namespace
}  // namespace relais

namespace relais {
namespace {

ConfigView tls_block(const std::string& yaml) {
  return ConfigView(YAML::Load(yaml), {&tls_client_spec()}, "connectors.d.tls");
}

// The outbound tls block read at start-up: the password from its file (first line) or from
// the environment; a file missing or a variable unset stops the start, naming the key.
TEST(TlsClientBlock, ReadsThePasswordFromAFileOrTheEnvironment) {
  TempDir dir;
  { std::ofstream(dir.file("c.p12")) << "x"; }
  { std::ofstream(dir.file("pass")) << "from-file\r\nsecond line\n"; }
  TlsClientOptions o = read_tls_client(
      tls_block("{client_certificate: " + dir.file("c.p12") +
                ", format: p12, client_key_password_file: " + dir.file("pass") + "}"),
      "connector d");
  EXPECT_EQ(o.client_certificate, dir.file("c.p12"));
  EXPECT_EQ(o.format, "p12");
  EXPECT_EQ(o.client_key_password, "from-file");

  ::setenv("RELAIS_TEST_KEY_PASSWORD", "from-env", 1);
  o = read_tls_client(tls_block("{client_certificate: " + dir.file("c.p12") +
                                ", client_key_password_env: RELAIS_TEST_KEY_PASSWORD}"),
                      "connector d");
  EXPECT_EQ(o.client_key_password, "from-env");
  ::unsetenv("RELAIS_TEST_KEY_PASSWORD");
  try {
    read_tls_client(tls_block("{client_certificate: " + dir.file("c.p12") +
                              ", client_key_password_env: RELAIS_TEST_KEY_PASSWORD}"),
                    "connector d");
    FAIL() << "an unset variable was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("RELAIS_TEST_KEY_PASSWORD is not set"), std::string::npos)
        << e.what();
  }
  try {
    read_tls_client(tls_block("{ca_file: " + dir.file("missing.pem") + "}"), "connector d");
    FAIL() << "a missing CA file was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("connector d: tls.ca_file: no such file"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace relais
