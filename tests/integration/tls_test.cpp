// TLS at the doors of the real binary (docs/security.md, "TLS"), with a throwaway PKI made at
// test time (tests/support/test_pki.h):
// - in: HTTPS with mutual TLS (optional); an API token bound to client certificate A is refused
//   (401, audited) without A or with B, accepted with A; SIGHUP with a new certificate (new
//   connections see it, an open keep-alive connection goes on) and with a bad one (kept
//   serving); a key that does not match its certificate stops the start-up with a clear error;
// - out: the generic http destination delivers to a partner that requires a client certificate
//   (an in-process api::HttpServer with client_certificates required) with a PEM and a PKCS#12
//   certificate; without one, or with a CA bundle that does not hold the partner's CA, the
//   delivery fails with a readable TLS reason.

#include <gtest/gtest.h>

#include <signal.h>

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "tests/support/relais_process.h"
#include "tests/support/test_pki.h"

namespace relais::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kBoundToken = "bound-system-token-0123456789";
const std::string kP12Password = "p12-pass-0123";

// "ab12…" → "AB:12:…", as people copy fingerprints from a certificate viewer.
std::string with_colons(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    if (!out.empty()) out += ':';
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(hex[i])));
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(hex[i + 1])));
  }
  return out;
}

// A partner that requires a client certificate from `pki`'s CA and records the fingerprint of
// each request's certificate. Owns its server (stopped by the destructor).
class Partner {
 public:
  Partner(const IssuedCert& server_cert, const std::string& client_ca) {
    api::HttpServerOptions o;
    o.threads = 2;
    o.tls.certificate = server_cert.cert;
    o.tls.key = server_cert.key;
    o.tls.client_ca = client_ca;
    o.tls.client_certificates = ClientCertificates::Required;
    server_ = std::make_unique<api::HttpServer>(
        o, [this](Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
          const api::PeerCertificate* cert = api::peer_certificate(req);
          {
            std::lock_guard<std::mutex> lock(mu_);
            seen_.push_back(cert != nullptr ? cert->sha256 : "");
          }
          resp.setStatus(Poco::Net::HTTPResponse::HTTP_CREATED);
          resp.set("Location", "/in/" + std::to_string(seen_.size()));
          resp.send() << "{}";
        });
    port_ = server_->start();
  }
  ~Partner() { server_->stop(); }
  int port() const { return port_; }
  std::vector<std::string> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> seen_;
  std::unique_ptr<api::HttpServer> server_;
  int port_ = 0;
};

class TlsIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alpha_ = std::make_unique<Pki>(pki_dir_.path(), "alpha");
    other_ = std::make_unique<Pki>(pki_dir_.path(), "other");
    server_cert_ = alpha_->server("relais");
    partner_cert_ = alpha_->server("partner");
    client_a_ = alpha_->client("client-a", "system-a");
    client_b_ = alpha_->client("client-b", "system-b");
    foreign_ = other_->client("client-foreign", "system-a");
    p12_ = alpha_->pkcs12(client_a_, "client-a", kP12Password);
    p12_pass_file_ = pki_dir_.write("p12.pass", kP12Password + "\n");
    partner_ = std::make_unique<Partner>(partner_cert_, alpha_->ca_file());
  }

  // relais with HTTPS (mutual TLS optional), a token bound to client A, and four destinations
  // to the partner: PEM certificate, PKCS#12, none, a CA bundle without the partner's CA.
  RelaisOptions options() {
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.port = free_port();
    o.server_extra_yaml =
        "  tls:\n    certificate: " + server_cert_.cert + "\n    key: " + server_cert_.key +
        "\n    client_ca: " + alpha_->ca_file() + "\n    client_certificates: optional\n";
    o.tokens_extra_yaml = "    - name: bound-system\n      token: " + kBoundToken +
                          "\n      role: system\n      client_certificate: \"" +
                          with_colons(client_a_.sha256) + "\"\n";
    const std::string url = "https://localhost:" + std::to_string(partner_->port()) + "/in";
    auto dest = [&](const std::string& name, const std::string& tls) {
      return "  " + name + ":\n    connector: http\n    url: " + url +
             "\n    retry: {initial: 50ms, max: 100ms, max_attempts: 1}\n    tls:\n" + tls;
    };
    const std::string ca = "      ca_file: " + alpha_->ca_file() + "\n";
    o.body_yaml =
        "sources:\n  in:\n    type: $.event\n"
        "connectors:\n" +
        dest("out-pem", ca + "      client_certificate: " + client_a_.cert +
                            "\n      client_key: " + client_a_.key + "\n") +
        dest("out-p12",
             ca + "      client_certificate: " + p12_ +
                 "\n      format: p12\n      client_key_password_file: " + p12_pass_file_ + "\n") +
        dest("out-nocert", ca) +
        dest("out-wrongca", "      ca_file: " + other_->ca_file() + "\n      client_certificate: " +
                                client_a_.cert + "\n      client_key: " + client_a_.key + "\n") +
        "routes:\n" + [] {
          std::string r;
          for (const char* d : {"out-pem", "out-p12", "out-nocert", "out-wrongca"}) {
            r += std::string("  - name: ") + d + "\n    source: in\n    type: \"" + d +
                 "\"\n    to:\n      - destination: " + d + "\n";
          }
          return r;
        }();
    return o;
  }

  std::string url(const RelaisProcess& r, const std::string& path) const {
    return "https://localhost:" + std::to_string(r.port()) + path;
  }
  ClientTls as(const IssuedCert* cert) const { return alpha_->client_tls(cert); }
  static std::vector<std::string> bearer(const std::string& token) {
    return {"Authorization: Bearer " + token, "Content-Type: application/json"};
  }

  // Posts one message of type `type`; returns its id ("" when refused).
  std::string post(RelaisProcess& r, const std::string& type) {
    TlsClient c(as(nullptr));
    Answer a = c.request("POST", url(r, "/api/v1/sources/in/messages"),
                         R"({"event":")" + type + R"(","n":1})", bearer(r.system_token()));
    EXPECT_EQ(a.status, 202) << a.error << a.body;
    return json::parse(a.body, nullptr, false).value("id", "");
  }

  // The delivery of message `id` once it is delivered or failed.
  json settled_delivery(RelaisProcess& r, const std::string& id) {
    TlsClient c(as(nullptr));
    json d;
    wait_until(
        [&] {
          Answer a = c.request("GET", url(r, "/api/v1/messages/" + id), "", bearer(r.token()));
          json m = json::parse(a.body, nullptr, false);
          if (!m.is_object() || !m.contains("deliveries") || m["deliveries"].empty()) return false;
          d = m["deliveries"][0];
          std::string state = d.value("state", "");
          return state == "delivered" || state == "dead" ||
                 (state == "retrying" && d.contains("last_outcome"));
        },
        std::chrono::seconds(15));
    return d;
  }

  TempDir pki_dir_{"relais-pki-"};
  std::unique_ptr<Pki> alpha_, other_;
  IssuedCert server_cert_, partner_cert_, client_a_, client_b_, foreign_;
  std::string p12_, p12_pass_file_;
  std::unique_ptr<Partner> partner_;
};

TEST_F(TlsIntegrationTest, ATokenBoundToACertificateNeedsThatCertificate) {
  RelaisProcess relais(options());
  relais.start();
  const std::string target = url(relais, "/api/v1/sources/in/messages");
  const std::string body = R"({"event":"none","n":1})";
  // Without a client certificate, and with B (a valid certificate, not the bound one): 401.
  for (const IssuedCert* cert : std::vector<const IssuedCert*>{nullptr, &client_b_}) {
    TlsClient c(as(cert));
    Answer a = c.request("POST", target, body, bearer(kBoundToken));
    ASSERT_EQ(a.rc, 0) << a.error;
    EXPECT_EQ(a.status, 401) << a.body;
    EXPECT_NE(a.body.find("client certificate"), std::string::npos) << a.body;
  }
  // A certificate from another CA does not even get through the handshake.
  TlsClient foreign(as(&foreign_));
  EXPECT_NE(foreign.request("POST", target, body, bearer(kBoundToken)).rc, 0);
  // With A: accepted.
  TlsClient good(as(&client_a_));
  Answer a = good.request("POST", target, body, bearer(kBoundToken));
  EXPECT_EQ(a.status, 202) << a.body;
  // The refusals are in the audit trail, as the token, with the reason.
  TlsClient admin(as(nullptr));
  Answer audit = admin.request("GET", url(relais, "/api/v1/audit?action=auth.refused"), "",
                               bearer(relais.token()));
  ASSERT_EQ(audit.status, 200) << audit.body;
  json j = json::parse(audit.body, nullptr, false);
  int refused = 0;
  for (const auto& e : j.value("items", json::array())) {
    if (e.value("action", "") != "auth.refused") continue;
    ++refused;
    EXPECT_EQ(e.value("actor", ""), "bound-system");
    EXPECT_EQ(e.value("object", ""), "token:bound-system");
  }
  EXPECT_EQ(refused, 2) << audit.body;
  // Unbound tokens work as before on the same port, with or without a certificate.
  TlsClient plain(as(nullptr));
  EXPECT_EQ(plain.request("POST", target, body, bearer(relais.system_token())).status, 202);
}

TEST_F(TlsIntegrationTest, SighupReloadsTheCertificateWithoutDroppingConnections) {
  RelaisProcess relais(options());
  relais.start();
  TlsClient kept(as(nullptr));
  Answer a = kept.get(url(relais, "/healthz"));
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.served_sha256, server_cert_.sha256);

  IssuedCert renewed = alpha_->server("renewed");
  fs::copy_file(renewed.cert, server_cert_.cert, fs::copy_options::overwrite_existing);
  fs::copy_file(renewed.key, server_cert_.key, fs::copy_options::overwrite_existing);
  ASSERT_EQ(::kill(relais.pid(), SIGHUP), 0);
  EXPECT_TRUE(wait_until(
      [&] {
        TlsClient fresh(as(nullptr));
        return fresh.get(url(relais, "/healthz")).served_sha256 == renewed.sha256;
      },
      std::chrono::seconds(10)));
  a = kept.get(url(relais, "/healthz"));
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.new_connections, 0);  // the connection opened before the reload

  // A bad certificate file: the reload fails, says why, and relais serves on.
  { std::ofstream(server_cert_.cert) << "garbage\n"; }
  ASSERT_EQ(::kill(relais.pid(), SIGHUP), 0);
  EXPECT_TRUE(wait_until(
      [&] {
        return (relais.stdout_text() + relais.stderr_text()).find("NOT reloaded") !=
               std::string::npos;
      },
      std::chrono::seconds(10)))
      << relais.stderr_text();
  TlsClient after(as(nullptr));
  a = after.get(url(relais, "/healthz"));
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.served_sha256, renewed.sha256);
  EXPECT_TRUE(relais.running());
  EXPECT_EQ(relais.stop(), 0);
}

// The sub-commands reach a relais with server.tls at the https URL it published, verifying its
// certificate with $RELAIS_CA_FILE and presenting $RELAIS_CLIENT_CERTIFICATE / _KEY.
TEST_F(TlsIntegrationTest, CommandsGoThroughTheHttpsApi) {
  RelaisOptions o = options();
  o.server_extra_yaml = "  tls:\n    certificate: " + server_cert_.cert +
                        "\n    key: " + server_cert_.key + "\n    client_ca: " + alpha_->ca_file() +
                        "\n    client_certificates: required\n";
  RelaisProcess relais(o);
  relais.start();
  const std::vector<std::string> add = {
      RELAIS_BINARY,        "users",   "add",         "carol", "--role", "support", "--config",
      relais.config_path(), "--token", relais.token()};
  ::setenv("RELAIS_PASSWORD", "carol-password-0123", 1);
  ::setenv("RELAIS_CA_FILE", alpha_->ca_file().c_str(), 1);
  CommandResult without = run_command(add);  // no client certificate: refused at the handshake
  ::setenv("RELAIS_CLIENT_CERTIFICATE", client_a_.cert.c_str(), 1);
  ::setenv("RELAIS_CLIENT_KEY", client_a_.key.c_str(), 1);
  CommandResult with = run_command(add);
  for (const char* v :
       {"RELAIS_PASSWORD", "RELAIS_CA_FILE", "RELAIS_CLIENT_CERTIFICATE", "RELAIS_CLIENT_KEY"}) {
    ::unsetenv(v);
  }
  EXPECT_NE(without.exit_code, 0) << without.out << without.err;
  EXPECT_EQ(with.exit_code, 0) << with.out << with.err;
  TlsClient admin(as(&client_a_));
  Answer a = admin.request("GET", url(relais, "/api/v1/users"), "", bearer(relais.token()));
  EXPECT_NE(a.body.find("carol"), std::string::npos) << a.body;
}

TEST_F(TlsIntegrationTest, AKeyThatDoesNotMatchItsCertificateStopsTheStart) {
  RelaisOptions o = options();
  IssuedCert unrelated = alpha_->server("unrelated");
  o.server_extra_yaml =
      "  tls:\n    certificate: " + server_cert_.cert + "\n    key: " + unrelated.key + "\n";
  o.tokens_extra_yaml.clear();  // (a bound token needs client_ca)
  RelaisProcess relais(o);
  try {
    relais.start();
    FAIL() << "relais started with a key that does not match its certificate";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match the certificate"), std::string::npos)
        << e.what();
  }
}

TEST_F(TlsIntegrationTest, OutboundClientCertificatesPemAndPkcs12) {
  RelaisProcess relais(options());
  relais.start();
  for (const char* type : {"out-pem", "out-p12"}) {
    std::string id = post(relais, type);
    json d = settled_delivery(relais, id);
    EXPECT_EQ(d.value("state", ""), "delivered") << type << ": " << d.dump();
  }
  // The partner saw client A's certificate both times.
  EXPECT_EQ(partner_->seen(), (std::vector<std::string>{client_a_.sha256, client_a_.sha256}));
}

TEST_F(TlsIntegrationTest, OutboundWithoutTheCertificateOrTheRightCaFailsWithAReadableReason) {
  RelaisProcess relais(options());
  relais.start();
  json d = settled_delivery(relais, post(relais, "out-nocert"));
  EXPECT_NE(d.value("state", ""), "delivered") << d.dump();
  ASSERT_TRUE(d.contains("last_outcome")) << d.dump();
  EXPECT_EQ(d["last_outcome"].value("class", ""), "tls") << d.dump();
  EXPECT_NE(d["last_outcome"].value("text", "").find("certificate"), std::string::npos) << d.dump();

  d = settled_delivery(relais, post(relais, "out-wrongca"));
  EXPECT_NE(d.value("state", ""), "delivered") << d.dump();
  ASSERT_TRUE(d.contains("last_outcome")) << d.dump();
  EXPECT_EQ(d["last_outcome"].value("class", ""), "tls") << d.dump();
  EXPECT_NE(d["last_outcome"].value("text", "").find("certificate"), std::string::npos) << d.dump();
  EXPECT_TRUE(partner_->seen().empty());
}

}  // namespace
}  // namespace relais::testing
