#include "tests/support/test_pki.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace relais::testing {
namespace {

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what + " failed");
}

std::string hex(const unsigned char* p, unsigned n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::string fingerprint(X509* x) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  check(X509_digest(x, EVP_sha256(), md, &n) == 1, "X509_digest");
  return hex(md, n);
}

void add_ext(X509* issuer, X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509* new_cert(EVP_PKEY* key, const std::string& cn, long serial) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 2 * 86400);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Relais tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return x;
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key, const EVP_CIPHER* cipher,
               const std::string& password) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "fopen");
  bool ok = cert != nullptr
                ? PEM_write_X509(f, cert) == 1
                : PEM_write_PrivateKey(f, key, cipher,
                                       reinterpret_cast<const unsigned char*>(password.data()),
                                       static_cast<int>(password.size()), nullptr, nullptr) == 1;
  std::fclose(f);
  check(ok, "PEM write");
}

}  // namespace

struct Pki::Impl {
  EVP_PKEY* ca_key = nullptr;
  X509* ca = nullptr;
  long serial = 1;
  ~Impl() {
    X509_free(ca);
    EVP_PKEY_free(ca_key);
  }
};

Pki::Pki(std::string dir, std::string name)
    : impl_(std::make_unique<Impl>()), dir_(std::move(dir)) {
  impl_->ca_key = EVP_EC_gen("P-256");
  check(impl_->ca_key != nullptr, "EVP_EC_gen");
  impl_->ca = new_cert(impl_->ca_key, name + " CA", impl_->serial++);
  X509_set_issuer_name(impl_->ca, X509_get_subject_name(impl_->ca));
  add_ext(impl_->ca, impl_->ca, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(impl_->ca, impl_->ca, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(impl_->ca, impl_->ca, NID_subject_key_identifier, "hash");
  check(X509_sign(impl_->ca, impl_->ca_key, EVP_sha256()) > 0, "X509_sign (CA)");
  ca_file_ = dir_ + "/" + name + "-ca.pem";
  write_pem(ca_file_, impl_->ca, nullptr, nullptr, "");
}

Pki::~Pki() = default;

ClientTls Pki::client_tls(const IssuedCert* cert) const {
  ClientTls t;
  t.ca = ca_file_;
  if (cert != nullptr) {
    t.cert = cert->cert;
    t.key = cert->key;
  }
  return t;
}

IssuedCert Pki::issue(const std::string& stem, const std::string& cn, bool server) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  check(key != nullptr, "EVP_EC_gen");
  X509* x = new_cert(key, cn, impl_->serial++);
  X509_set_issuer_name(x, X509_get_subject_name(impl_->ca));
  add_ext(impl_->ca, x, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(impl_->ca, x, NID_key_usage, "critical,digitalSignature");
  add_ext(impl_->ca, x, NID_ext_key_usage, server ? "serverAuth" : "clientAuth");
  add_ext(impl_->ca, x, NID_authority_key_identifier, "keyid:always");
  if (server) add_ext(impl_->ca, x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  check(X509_sign(x, impl_->ca_key, EVP_sha256()) > 0, "X509_sign");
  IssuedCert out;
  out.cert = dir_ + "/" + stem + ".pem";
  out.key = dir_ + "/" + stem + ".key";
  out.sha256 = fingerprint(x);
  write_pem(out.cert, x, nullptr, nullptr, "");
  write_pem(out.key, nullptr, key, nullptr, "");
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

IssuedCert Pki::server(const std::string& stem, const std::string& cn) {
  return issue(stem, cn, true);
}

IssuedCert Pki::client(const std::string& stem, const std::string& cn) {
  return issue(stem, cn, false);
}

namespace {
template <typename T, typename F>
T* read_pem_file(const std::string& path, F reader) {
  FILE* f = std::fopen(path.c_str(), "r");
  check(f != nullptr, "fopen");
  T* v = reader(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  check(v != nullptr, "PEM read");
  return v;
}
}  // namespace

std::string Pki::pkcs12(const IssuedCert& c, const std::string& stem, const std::string& password) {
  X509* x = read_pem_file<X509>(c.cert, PEM_read_X509);
  EVP_PKEY* key = read_pem_file<EVP_PKEY>(c.key, PEM_read_PrivateKey);
  PKCS12* p12 = PKCS12_create(password.c_str(), "relais test", key, x, nullptr, 0, 0, 0, 0, 0);
  check(p12 != nullptr, "PKCS12_create");
  std::string path = dir_ + "/" + stem + ".p12";
  FILE* f = std::fopen(path.c_str(), "wb");
  check(f != nullptr, "fopen");
  bool ok = i2d_PKCS12_fp(f, p12) == 1;
  std::fclose(f);
  PKCS12_free(p12);
  X509_free(x);
  EVP_PKEY_free(key);
  check(ok, "i2d_PKCS12_fp");
  return path;
}

std::string Pki::encrypted_key(const IssuedCert& c, const std::string& stem,
                               const std::string& password) {
  EVP_PKEY* key = read_pem_file<EVP_PKEY>(c.key, PEM_read_PrivateKey);
  std::string path = dir_ + "/" + stem + ".key";
  write_pem(path, nullptr, key, EVP_aes_256_cbc(), password);
  EVP_PKEY_free(key);
  return path;
}

std::string pem_sha256(const std::string& pem) {
  std::string text = pem;
  if (pem.find("-----BEGIN") == std::string::npos) {
    std::ifstream in(pem);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (x == nullptr) return "";
  std::string out = fingerprint(x);
  X509_free(x);
  return out;
}

namespace {
size_t collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}
}  // namespace

TlsClient::TlsClient(ClientTls tls) : tls_(std::move(tls)), h_(curl_easy_init()) {
  check(h_ != nullptr, "curl_easy_init");
}

TlsClient::~TlsClient() {
  curl_easy_cleanup(static_cast<CURL*>(h_));
}

Answer TlsClient::request(const std::string& method, const std::string& url,
                          const std::string& body, const std::vector<std::string>& headers) {
  CURL* h = static_cast<CURL*>(h_);
  Answer a;
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &a.body);
  curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_SESSIONID_CACHE, 0L);
  if (!tls_.ca.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, tls_.ca.c_str());
  if (!tls_.cert.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, tls_.cert.c_str());
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, tls_.cert_type.c_str());
  }
  if (!tls_.key.empty()) curl_easy_setopt(h, CURLOPT_SSLKEY, tls_.key.c_str());
  if (!tls_.key_password.empty()) curl_easy_setopt(h, CURLOPT_KEYPASSWD, tls_.key_password.c_str());
  if (tls_.ssl_version != 0) curl_easy_setopt(h, CURLOPT_SSLVERSION, tls_.ssl_version);
  if (!tls_.ciphers.empty()) curl_easy_setopt(h, CURLOPT_SSL_CIPHER_LIST, tls_.ciphers.c_str());
  curl_slist* list = curl_slist_append(nullptr, "Expect:");
  for (const auto& line : headers) list = curl_slist_append(list, line.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  a.rc = static_cast<int>(curl_easy_perform(h));
  curl_slist_free_all(list);
  a.error = err;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &a.new_connections);
  curl_certinfo* info = nullptr;
  if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &info) == CURLE_OK && info != nullptr &&
      info->num_of_certs > 0) {
    for (curl_slist* s = info->certinfo[0]; s != nullptr; s = s->next) {
      std::string line = s->data;
      if (line.rfind("Cert:", 0) == 0) a.served_sha256 = pem_sha256(line.substr(5));
    }
  }
  return a;
}

}  // namespace relais::testing
