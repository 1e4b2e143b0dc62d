#include "api/tls_server.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>

#include "core/crypto.h"
#include "core/files.h"

namespace relais::api {
namespace {

// TLS 1.2: ECDHE key exchange and AEAD ciphers only (forward secrecy, no CBC, no RSA key
// transport). TLS 1.3 keeps OpenSSL's default suites (all AEAD).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

constexpr unsigned char kSessionContext[] = "relais";

// The key's password, handed to OpenSSL while the key is read.
int password_callback(char* buf, int size, int /*rwflag*/, void* user) {
  const auto* password = static_cast<const std::string*>(user);
  if (password == nullptr || size <= 0) return 0;
  int n = static_cast<int>(std::min<size_t>(password->size(), static_cast<size_t>(size)));
  std::memcpy(buf, password->data(), static_cast<size_t>(n));
  return n;
}

bool readable(const std::string& path) {
  std::string ignored;
  return read_text_file(path, ignored);
}

}  // namespace

std::string openssl_error_text() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::shared_ptr<SSL_CTX> make_server_tls_context(const TlsServerOptions& o, std::string& error) {
  ERR_clear_error();
  for (const auto& [key, path] :
       {std::pair<const char*, const std::string*>{"certificate", &o.certificate},
        {"key", &o.key},
        {"key_password_file", &o.key_password_file},
        {"client_ca", &o.client_ca}}) {
    if (!path->empty() && !readable(*path)) {
      error = std::string("server.tls.") + key + ": cannot read " + *path;
      return nullptr;
    }
  }
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) {
    error = "server.tls: cannot create the TLS context: " + openssl_error_text();
    return nullptr;
  }
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, o.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  // A client that half-closes without close_notify after its request still gets the answer.
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(c, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1) {
    error = "server.tls: cannot set the cipher list: " + openssl_error_text();
    return nullptr;
  }
  SSL_CTX_set_session_id_context(c, kSessionContext, sizeof kSessionContext - 1);
  if (SSL_CTX_use_certificate_chain_file(c, o.certificate.c_str()) != 1) {
    error = "server.tls.certificate: " + o.certificate +
            " is not a PEM certificate chain: " + openssl_error_text();
    return nullptr;
  }
  std::string password;
  if (!o.key_password_file.empty()) {
    read_text_file(o.key_password_file, password);
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
      password.pop_back();
    }
  }
  SSL_CTX_set_default_passwd_cb(c, password_callback);
  SSL_CTX_set_default_passwd_cb_userdata(c, &password);
  int key_ok = SSL_CTX_use_PrivateKey_file(c, o.key.c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_set_default_passwd_cb_userdata(c, nullptr);  // `password` ends here
  OPENSSL_cleanse(password.data(), password.size());
  const unsigned long key_error = ERR_peek_error();
  if (key_ok != 1 && ERR_GET_LIB(key_error) == ERR_LIB_X509 &&
      ERR_GET_REASON(key_error) == X509_R_KEY_VALUES_MISMATCH) {
    key_ok = 1;  // read, but not the certificate's: said just below
    ERR_clear_error();
  }
  if (key_ok != 1) {
    error = "server.tls.key: " + o.key + " cannot be read as a PEM private key" +
            (o.key_password_file.empty() ? std::string(" (encrypted? see key_password_file)")
                                         : std::string(" with the password of key_password_file")) +
            ": " + openssl_error_text();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    error = "server.tls.key: " + o.key + " does not match the certificate " + o.certificate;
    ERR_clear_error();
    return nullptr;
  }
  if (!o.client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(c, o.client_ca.c_str(), nullptr) != 1) {
      error = "server.tls.client_ca: " + o.client_ca +
              " is not a PEM bundle of CA certificates: " + openssl_error_text();
      return nullptr;
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca.c_str());
    if (names == nullptr) {
      error = "server.tls.client_ca: " + o.client_ca + " holds no CA certificate";
      ERR_clear_error();
      return nullptr;
    }
    SSL_CTX_set_client_CA_list(c, names);  // takes ownership
  }
  switch (o.client_certificates) {
    case ClientCertificates::None:
      SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
      break;
    case ClientCertificates::Optional:
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
      break;
    case ClientCertificates::Required:
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      break;
  }
  return ctx;
}

std::string certificate_sha256(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (cert == nullptr || X509_digest(cert, EVP_sha256(), md, &len) != 1) return "";
  return to_hex(md, len);
}

std::optional<PeerCertificate> verified_peer_certificate(SSL* ssl) {
  if (ssl == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return std::nullopt;
  PeerCertificate p;
  p.sha256 = certificate_sha256(cert);
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) p.subject.assign(data, static_cast<size_t>(n));
    BIO_free(bio);
  }
  X509_free(cert);
  if (p.sha256.empty()) return std::nullopt;
  return p;
}

}  // namespace relais::api
