// Bad input as a hostile client sends it, against the real binary: a catalogue, one case per
// line (the request and the answer it must get: status and a fragment of the body), then proof
// that relais survived it (/healthz answers, every accepted message can be read back), and a
// store written by an older relais (a message nested 100,000 levels deep) that the console
// reads without crashing.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/store.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using relais::tools::HttpSink;
using namespace std::string_literals;

// `n` levels of arrays around 1: "[[1]]" for 2.
std::string nested_arrays(size_t n) {
  return std::string(n, '[') + "1" + std::string(n, ']');
}
// `n` levels of objects: {"a":{"a":1}} for 2.
std::string nested_objects(size_t n) {
  std::string s;
  s.reserve(n * 6 + 1);
  for (size_t i = 0; i < n; ++i) s += "{\"a\":";
  s += "1";
  s.append(n, '}');
  return s;
}
// An app message whose deepest nesting is `depth` (the message object counts as one level).
std::string app_with_depth(const std::string& key, size_t depth) {
  return "{\"type\":\"t\",\"key\":\"" + key + "\",\"x\":" + nested_arrays(depth - 1) + "}";
}
std::string rdv(const std::string& digits) {
  return "{\"event\":\"rdv.planned\",\"id\":" + digits + ",\"rdv\":{\"id\":" + digits + "}}";
}

// One raw HTTP/1.1 exchange on a fresh connection: the target is sent byte for byte (a client
// library might re-encode "%zz"). Returns the status, and the body in `body`.
long raw_get(int port, const std::string& target, const std::string& token, std::string& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return 0;
  }
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                    token + "\r\nConnection: close\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string in;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) in.append(buf, static_cast<size_t>(n));
  ::close(fd);
  auto sp = in.find(' ');
  auto end = in.find("\r\n\r\n");
  if (sp == std::string::npos || end == std::string::npos) return 0;
  body = in.substr(end + 4);
  return std::stol(in.substr(sp + 1, 3));
}

std::string hub_yaml(int sink_port) {
  std::ostringstream y;
  // max_attempts 0 (no limit) is a valid configuration.
  y << "sources:\n"
       "  app: {type: $.type, correlation: \"{$.key}\"}\n"
       "  cms76: {type: $.event, correlation: \"rdv:{$.rdv.id}\", idempotency: $.id}\n"
       "connectors:\n"
       "  sink: {connector: http, method: POST, url: \"http://127.0.0.1:"
    << sink_port
    << "/in\",\n"
       "         retry: {initial: 100ms, max: 500ms, max_attempts: 0}}\n"
       "routes:\n"
       "  - {name: app-to-sink, source: app, to: [{destination: sink}]}\n"
       "  - {name: cms76-to-sink, source: cms76, to: [{destination: sink}]}\n";
  return y.str();
}

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml = hub_yaml(sink_.port());
    o.server_extra_yaml = "  max_body: 1MiB\n  max_depth: 64\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
  }

  HttpSink sink_;
  std::unique_ptr<RelaisProcess> relais_;
};

struct Case {
  std::string name;
  std::string method;  // POST, or RAW-GET (the target sent byte for byte)
  std::string target;
  std::string content_type;
  std::string body;
  long status;
  std::string fragment;  // must appear in the answer's body
};

TEST_F(HostileInputTest, CatalogueOfHostileRequests) {
  const std::string one = "/api/v1/sources/app/messages";
  const std::string batch = "/api/v1/sources/app/messages:batch";
  const std::string cms = "/api/v1/sources/cms76/messages";
  const std::string direct = "/api/v1/destinations/sink/messages";
  const std::string ct = "application/json";
  const std::string nd = "application/x-ndjson";
  const std::string big1 = "18446744073709551616123", big2 = "18446744073709551616456";
  // clang-format off
  const std::vector<Case> cases = {
    {"arrays 100,000 deep", "POST", one, ct, nested_arrays(100000), 422, "nested 100000 levels deep; the limit is 64"},
    {"objects 100,000 deep", "POST", one, ct, nested_objects(100000), 422, "nested 100000 levels deep; the limit is 64"},
    {"depth at the limit", "POST", one, ct, app_with_depth("d64", 64), 202, "\"id\""},
    {"depth one over", "POST", one, ct, app_with_depth("d65", 65), 422, "\"max_depth\":64"},
    {"deep line in a batch", "POST", batch, nd, app_with_depth("b1", 2) + "\n" + nested_objects(100000) + "\n", 200, "\"line\":2"},
    {"deep direct message", "POST", direct, ct, "{\"type\":\"t\",\"body\":" + nested_objects(100000) + "}", 422, "too deeply nested"},
    {"%zz in the path", "RAW-GET", "/api/v1/messages/%zz", "", "", 400, "the path has a %-escape"},
    {"%zz in the query", "RAW-GET", "/api/v1/messages?state=%zz", "", "", 400, "the query has a %-escape"},
    {"%2 at the end", "RAW-GET", "/api/v1/messages?state=%2", "", "", 400, "\"part\":\"query\""},
    {"%25zz (decodes to %zz)", "RAW-GET", "/api/v1/messages/%25zz", "", "", 404, "no message %zz"},
    {"big integer key 1", "POST", cms, ct, rdv(big1), 202, "\"id\""},
    {"big integer key 2", "POST", cms, ct, rdv(big2), 202, "\"id\""},
    {"big integer key 1 again", "POST", cms, ct, rdv(big1), 200, "\"duplicate\":true"},
    {"invalid UTF-8", "POST", one, ct, "{\"type\":\"t\",\"key\":\"k\xff\xfe\"}", 400, "malformed JSON"},
    {"0-byte body", "POST", one, ct, "", 400, "malformed JSON"},
    {"body over max_body", "POST", one, ct, "{\"type\":\"t\",\"key\":\"k\",\"pad\":\"" + std::string(1100 * 1024, 'x') + "\"}", 413, "payload too large"},
    {"wrong content type", "POST", one, "text/plain", "{\"type\":\"t\",\"key\":\"k\"}", 415, "unsupported media type"},
    {"NUL inside a string", "POST", one, ct, "{\"type\":\"t\",\"key\":\"a\0b\"}"s, 400, "malformed JSON"},
    {"NUL after the value", "POST", one, ct, "{\"type\":\"t\",\"key\":\"k\"}\0"s, 400, "malformed JSON"},
    {"duplicated key", "POST", one, ct, "{\"type\":\"t\",\"key\":\"a\",\"key\":\"b\"}", 422, "the key 'key' appears twice"},
    {"number a double cannot hold", "POST", one, ct, "{\"type\":\"t\",\"key\":\"k\",\"n\":1e999}", 400, "1e999"},
  };
  // clang-format on
  HttpClient api = relais_->client();
  std::vector<std::string> accepted;
  for (const auto& c : cases) {
    long status = 0;
    std::string body;
    if (c.method == "RAW-GET") {
      status = raw_get(relais_->port(), c.target, relais_->token(), body);
    } else {
      HttpClient fresh(relais_->base_url(), relais_->token());  // an error may close it
      HttpResponse r = fresh.post(c.target, c.body, c.content_type);
      status = r.status;
      body = r.body;
    }
    EXPECT_EQ(status, c.status) << c.name << ": " << body;
    EXPECT_NE(body.find(c.fragment), std::string::npos)
        << c.name << ": '" << c.fragment << "' not in " << body;
    json j = json::parse(body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << c.name << ": the answer is not a JSON object: " << body;
    if (status >= 400) {
      EXPECT_TRUE(j.contains("error") && j.contains("detail")) << c.name << ": " << body;
    }
    if (status == 202) accepted.push_back(j["id"].get<std::string>());
    for (const auto& item : j.value("results", json::array())) {
      if (item["status"] == 202) accepted.push_back(item["id"].get<std::string>());
    }
  }

  // relais survived the catalogue, and every accepted message reads back.
  EXPECT_EQ(api.get("/healthz").status, 200);
  ASSERT_EQ(accepted.size(), 4u);  // depth 64, the batch's first line, the two big integers
  for (const auto& id : accepted) {
    HttpResponse r = api.get("/api/v1/messages/" + id);
    EXPECT_EQ(r.status, 200) << id << ": " << r.body << r.error;
    EXPECT_EQ(r.json()["id"], id) << r.body;
  }
  // The two big integers are two messages, each under its own key, digits as written.
  HttpResponse first = api.get("/api/v1/messages/" + accepted[2]);
  HttpResponse second = api.get("/api/v1/messages/" + accepted[3]);
  EXPECT_EQ(first.json()["correlation_key"], "rdv:" + big1) << first.body;
  EXPECT_EQ(first.json()["idempotency_key"], big1) << first.body;
  EXPECT_EQ(second.json()["correlation_key"], "rdv:" + big2) << second.body;
  EXPECT_EQ(second.json()["idempotency_key"], big2) << second.body;
  // The batch's good line went in too; the sink receives every accepted message.
  EXPECT_GE(sink_.wait_for(4, 15000), 4u);
  EXPECT_EQ(api.get("/healthz").status, 200);
}

// A store written by an older relais, which accepted a message nested 100,000 levels deep:
// the message and delivery views answer (the body shown as text), and the delivery fails with
// a reason instead of crashing the worker.
TEST_F(HostileInputTest, DeepDocumentInAnOldStoreDoesNotCrashTheConsole) {
  ASSERT_EQ(relais_->stop(), 0);
  auto deep = std::make_shared<Message>();
  deep->id = "01KAAAAAAAAAAAAAAAAAAAAAAA";
  deep->source = "app";
  deep->type = "t";
  deep->correlation = "old";
  deep->body = nested_objects(100000);
  deep->received_at = 1'700'000'000'000;
  {
    StoreOptions so;
    so.path = relais_->store_path();
    auto store = open_sqlite_store(so);
    std::vector<Incoming> batch(1);
    batch[0].message = deep;
    batch[0].deliveries.push_back(NewDelivery{"sink", "app-to-sink", "", 0});
    auto results = store->accept(std::move(batch));
    ASSERT_EQ(results.size(), 1u);
    ASSERT_NE(results[0].kind, AcceptResult::Kind::Failed) << results[0].error;
    store->close();
  }
  relais_->restart();
  HttpClient api = relais_->client();
  HttpResponse m = api.get("/api/v1/messages/" + deep->id);
  ASSERT_EQ(m.status, 200) << m.body << m.error;
  EXPECT_TRUE(m.json()["body"].is_string()) << "a document too deep is shown as its text";
  ASSERT_TRUE(m.json()["deliveries"].is_array() && !m.json()["deliveries"].empty());
  std::string delivery = m.json()["deliveries"][0]["id"].get<std::string>();
  // The worker refuses the document (no copy, no mapping of it): dead, with a reason.
  ASSERT_TRUE(wait_until(
      [&] {
        HttpResponse d = api.get("/api/v1/deliveries/" + delivery);
        return d.status == 200 && d.json()["state"] == "dead";
      },
      std::chrono::milliseconds(15000)));
  HttpResponse d = api.get("/api/v1/deliveries/" + delivery);
  EXPECT_EQ(d.status, 200) << d.body;
  EXPECT_TRUE(d.json()["payload_before"].is_string()) << d.body.substr(0, 300);
  EXPECT_NE(d.body.find("server.max_depth"), std::string::npos) << d.body.substr(0, 300);
  EXPECT_EQ(sink_.total(), 0u);
  EXPECT_EQ(api.get("/healthz").status, 200);
  EXPECT_TRUE(relais_->running());
}

}  // namespace
}  // namespace relais::testing
