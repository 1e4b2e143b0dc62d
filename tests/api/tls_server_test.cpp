// TLS on the event-driven HTTP server (api/http_server.h, api/tls_server.h), in process: a
// throwaway PKI made at test time (tests/support/test_pki.h), real libcurl clients over
// loopback. HTTPS answered; TLS 1.1 and plain HTTP refused without harm; a client that never
// finishes its handshake is closed by the header deadline and holds no thread; reload with a
// new certificate (new connections see it, an open keep-alive connection goes on); a bad
// reload keeps serving; mutual TLS (required / optional) and the verified certificate given to
// the handler.

#include <gtest/gtest.h>

#include <curl/curl.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "api/http_server.h"
#include "tests/support/raw_http.h"
#include "tests/support/test_pki.h"

namespace relais::api {
namespace {

namespace fs = std::filesystem;
using relais::testing::Answer;
using relais::testing::ClientTls;
using relais::testing::IssuedCert;
using relais::testing::Pki;
using relais::testing::RawConnection;
using relais::testing::TlsClient;
using SteadyClock = std::chrono::steady_clock;

// Answers "URI secure=0|1 cert=<sha256 of the verified client certificate, or ->".
void echo(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
  const PeerCertificate* cert = peer_certificate(req);
  resp.setContentType("text/plain");
  resp.send() << req.getURI() << " secure=" << (req.secure() ? 1 : 0)
              << " cert=" << (cert != nullptr ? cert->sha256 : "-");
}

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("relais-tls-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    pki_ = std::make_unique<Pki>(dir_.string(), "alpha");
    other_ = std::make_unique<Pki>(dir_.string(), "other");
    server_cert_ = pki_->server("server");
  }
  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    fs::remove_all(dir_);
  }

  HttpServerOptions tls_options() {
    HttpServerOptions o;
    o.threads = 2;
    o.tls.certificate = server_cert_.cert;
    o.tls.key = server_cert_.key;
    return o;
  }
  void start(HttpServerOptions o) {
    server_ = std::make_unique<HttpServer>(o, echo);
    port_ = server_->start();
  }
  std::string url(const std::string& path = "/hello") const {
    return "https://localhost:" + std::to_string(port_) + path;
  }
  // A client that trusts the server's CA and presents `cert` (none when null).
  ClientTls trusting(const IssuedCert* cert = nullptr) const { return pki_->client_tls(cert); }
  static void copy_over(const std::string& from, const std::string& to) {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  }

  fs::path dir_;
  std::unique_ptr<Pki> pki_, other_;
  IssuedCert server_cert_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

TEST_F(TlsServerTest, AnswersOverHttps) {
  start(tls_options());
  TlsClient c(trusting());
  Answer a = c.get(url());
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "/hello secure=1 cert=-");
  EXPECT_EQ(a.served_sha256, server_cert_.sha256);
  // Keep-alive over TLS: the second request on the same connection.
  a = c.get(url("/again"));
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.body, "/again secure=1 cert=-");
  EXPECT_EQ(a.new_connections, 0);
}

TEST_F(TlsServerTest, MinimumVersionRefusesOlderClients) {
  start(tls_options());
  ClientTls old = trusting();
  old.ssl_version =
      static_cast<long>(CURL_SSLVERSION_TLSv1_1) | static_cast<long>(CURL_SSLVERSION_MAX_TLSv1_1);
  old.ciphers = "DEFAULT:@SECLEVEL=0";  // this client may offer TLS 1.1: the server refuses it
  TlsClient c(old);
  Answer a = c.get(url());
  EXPECT_NE(a.rc, 0);
  EXPECT_NE(a.error.find("protocol version"), std::string::npos) << a.error;
  EXPECT_GE(server_->stats().tls_failures, 1u);

  // min_version 1.3: a TLS 1.2 client is refused, a TLS 1.3 one served.
  server_->stop();
  HttpServerOptions o = tls_options();
  o.tls.min_version = "1.3";
  start(o);
  ClientTls v12 = trusting();
  v12.ssl_version =
      static_cast<long>(CURL_SSLVERSION_TLSv1_2) | static_cast<long>(CURL_SSLVERSION_MAX_TLSv1_2);
  TlsClient c12(v12);
  a = c12.get(url());
  EXPECT_NE(a.rc, 0);
  EXPECT_NE(a.error.find("protocol version"), std::string::npos) << a.error;
  TlsClient c13(trusting());
  a = c13.get(url());
  EXPECT_EQ(a.rc, 0) << a.error;
}

TEST_F(TlsServerTest, PlainHttpOnTheTlsPortIsRefusedWithoutHarm) {
  start(tls_options());
  RawConnection raw(port_);
  ASSERT_TRUE(raw.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(raw.closed_by_peer(3000));
  // Told in plain HTTP that this port speaks HTTPS; no request was handled.
  EXPECT_NE(raw.pending().find("400"), std::string::npos) << raw.pending();
  EXPECT_NE(raw.pending().find("HTTPS"), std::string::npos) << raw.pending();
  EXPECT_EQ(raw.pending().find("secure="), std::string::npos);
  TlsClient c(trusting());
  Answer a = c.get(url());
  EXPECT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.status, 200);
}

TEST_F(TlsServerTest, UnfinishedHandshakeIsClosedByTheHeaderDeadlineAndHoldsNoThread) {
  HttpServerOptions o = tls_options();
  o.threads = 1;  // one handler thread: a client that held it would block everybody
  o.header_timeout_ms = 600;
  start(o);
  RawConnection silent(port_);   // TCP only
  RawConnection partial(port_);  // starts a ClientHello, never finishes
  ASSERT_TRUE(partial.send(std::string("\x16\x03\x01\x02\x00\x01", 6)));
  auto t0 = SteadyClock::now();
  // Meanwhile the server answers others (the one thread is free).
  TlsClient c(trusting());
  Answer a = c.get(url("/healthz"));
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.body, "/healthz secure=1 cert=-");
  EXPECT_LT(SteadyClock::now() - t0, std::chrono::milliseconds(600));
  // Both are closed at the header deadline (not before, not much after).
  EXPECT_TRUE(silent.closed_by_peer(3000));
  EXPECT_TRUE(partial.closed_by_peer(3000));
  auto waited = SteadyClock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(500));
  EXPECT_LT(waited, std::chrono::milliseconds(2500));
  EXPECT_GE(server_->stats().header_timeouts, 2u);
}

TEST_F(TlsServerTest, ReloadServesTheNewCertificateToNewConnectionsOnly) {
  start(tls_options());
  TlsClient old_conn(trusting());
  Answer a = old_conn.get(url());
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.served_sha256, server_cert_.sha256);

  // The files are replaced (as a renewal does), then the reload.
  IssuedCert renewed = pki_->server("renewed");
  ASSERT_NE(renewed.sha256, server_cert_.sha256);
  copy_over(renewed.cert, server_cert_.cert);
  copy_over(renewed.key, server_cert_.key);
  std::string error;
  ASSERT_TRUE(server_->reload_tls(error)) << error;

  TlsClient fresh(trusting());
  a = fresh.get(url());
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.served_sha256, renewed.sha256);
  // The keep-alive connection opened before the reload goes on.
  a = old_conn.get(url("/still"));
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.new_connections, 0);
  EXPECT_EQ(a.body, "/still secure=1 cert=-");
}

TEST_F(TlsServerTest, BadReloadKeepsTheCurrentCertificate) {
  start(tls_options());
  // A key that does not match the certificate.
  IssuedCert other = pki_->server("unrelated");
  copy_over(other.key, server_cert_.key);
  std::string error;
  EXPECT_FALSE(server_->reload_tls(error));
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;
  // A file that is not PEM.
  { std::ofstream(server_cert_.cert) << "not a certificate\n"; }
  EXPECT_FALSE(server_->reload_tls(error));
  EXPECT_NE(error.find("server.tls.certificate"), std::string::npos) << error;
  // A file gone.
  fs::remove(server_cert_.key);
  EXPECT_FALSE(server_->reload_tls(error));
  EXPECT_NE(error.find("cannot read"), std::string::npos) << error;
  // Still served, with the certificate loaded at the start.
  TlsClient c(trusting());
  Answer a = c.get(url());
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.served_sha256, server_cert_.sha256);
}

TEST_F(TlsServerTest, StartRefusesFilesThatDoNotGoTogether) {
  HttpServerOptions o = tls_options();
  o.tls.key = pki_->server("unrelated").key;
  HttpServer s(o, echo);
  try {
    s.start();
    FAIL() << "started with a key that does not match";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match the certificate"), std::string::npos)
        << e.what();
  }
  o = tls_options();
  o.tls.certificate = (dir_ / "missing.pem").string();
  HttpServer s2(o, echo);
  EXPECT_THROW(s2.start(), std::runtime_error);
}

TEST_F(TlsServerTest, EncryptedKeyWithItsPasswordFile) {
  HttpServerOptions o = tls_options();
  o.tls.key = pki_->encrypted_key(server_cert_, "server-encrypted", "s3cret-pass");
  std::string pass_file = (dir_ / "key.pass").string();
  { std::ofstream(pass_file) << "s3cret-pass\n"; }
  o.tls.key_password_file = pass_file;
  start(o);
  TlsClient c(trusting());
  Answer a = c.get(url());
  EXPECT_EQ(a.rc, 0) << a.error;
  // Without the password: a clear start-up error.
  server_->stop();
  o.tls.key_password_file.clear();
  HttpServer s(o, echo);
  EXPECT_THROW(s.start(), std::runtime_error);
}

TEST_F(TlsServerTest, MutualTlsRequired) {
  HttpServerOptions o = tls_options();
  o.tls.client_ca = pki_->ca_file();
  o.tls.client_certificates = ClientCertificates::Required;
  start(o);
  IssuedCert a_cert = pki_->client("client-a", "system-a");
  IssuedCert foreign = other_->client("client-foreign", "system-a");

  TlsClient none(trusting());
  Answer a = none.get(url());
  EXPECT_NE(a.rc, 0);
  EXPECT_EQ(a.status, 0);

  TlsClient foreign_client(trusting(&foreign));
  a = foreign_client.get(url());
  EXPECT_NE(a.rc, 0);
  EXPECT_EQ(a.status, 0);

  TlsClient good_client(trusting(&a_cert));
  a = good_client.get(url());
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.body, "/hello secure=1 cert=" + a_cert.sha256);
  EXPECT_GE(server_->stats().tls_failures, 2u);
}

TEST_F(TlsServerTest, MutualTlsOptional) {
  HttpServerOptions o = tls_options();
  o.tls.client_ca = pki_->ca_file();
  o.tls.client_certificates = ClientCertificates::Optional;
  start(o);
  TlsClient none(trusting());
  Answer a = none.get(url());
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.body, "/hello secure=1 cert=-");
  IssuedCert b = pki_->client("client-b", "system-b");
  TlsClient with_client(trusting(&b));
  a = with_client.get(url());
  ASSERT_EQ(a.rc, 0) << a.error;
  EXPECT_EQ(a.body, "/hello secure=1 cert=" + b.sha256);
}

}  // namespace
}  // namespace relais::api
