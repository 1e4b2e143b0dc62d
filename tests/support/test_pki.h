#pragma once
// For the TLS tests: throwaway certificates made at test time with OpenSSL's C API (no CLI, no
// fixture): a CA, server certificates (localhost and 127.0.0.1) and client certificates it
// signs, written as PEM (and PKCS#12) files in a directory the caller owns; P-256 keys, valid
// from an hour ago for two days. And a libcurl HTTPS client that tells which certificate the
// server presented. Not thread-safe (one Pki, one TlsClient per thread); each owns its objects.

#include <memory>
#include <string>
#include <vector>

namespace relais::testing {

// A key and its certificate, as files.
struct IssuedCert {
  std::string cert;    // PEM certificate (leaf only)
  std::string key;     // PEM private key (not encrypted)
  std::string sha256;  // fingerprint of the DER, lower-case hex without colons
};

// What a client asks of the TLS connection.
struct ClientTls {
  std::string ca;  // CA bundle the server must chain to
  std::string cert, key, cert_type = "PEM", key_password;
  long ssl_version = 0;  // CURLOPT_SSLVERSION; 0 = libcurl's default
  std::string ciphers;   // CURLOPT_SSL_CIPHER_LIST; "" = default
};

class Pki {
 public:
  // A new CA (subject CN="`name` CA"): its certificate goes to `dir`/`name`-ca.pem, its key
  // stays in memory.
  Pki(std::string dir, std::string name);
  ~Pki();
  Pki(const Pki&) = delete;
  Pki& operator=(const Pki&) = delete;

  const std::string& ca_file() const { return ca_file_; }
  // A client that trusts this CA and presents `cert` (none when null).
  ClientTls client_tls(const IssuedCert* cert = nullptr) const;
  // A server certificate for localhost and 127.0.0.1, written as `file_stem`.pem / .key.
  IssuedCert server(const std::string& file_stem, const std::string& cn = "localhost");
  // A client certificate (extendedKeyUsage clientAuth), written as `file_stem`.pem / .key.
  IssuedCert client(const std::string& file_stem, const std::string& cn);
  // The same key and certificate as a PKCS#12 file protected by `password`; returns its path.
  std::string pkcs12(const IssuedCert& c, const std::string& file_stem,
                     const std::string& password);
  // The key of `c` written again, encrypted (AES-256) with `password`; returns its path.
  std::string encrypted_key(const IssuedCert& c, const std::string& file_stem,
                            const std::string& password);

 private:
  IssuedCert issue(const std::string& file_stem, const std::string& cn, bool server);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string dir_;
  std::string ca_file_;
};

// The SHA-256 fingerprint (lower-case hex) of the first certificate of a PEM file or text.
std::string pem_sha256(const std::string& pem_text);

// One exchange. rc != 0 (CURLcode): no answer, `error` says why (libcurl's error buffer).
struct Answer {
  int rc = 0;
  long status = 0;
  std::string body;
  std::string error;
  std::string served_sha256;  // the certificate the server presented (on a new connection)
  long new_connections = 0;   // 0: the request went on a connection already open
};

// One libcurl handle: keeps its connection between requests (keep-alive); no TLS session
// reuse (every new connection makes a full handshake).
class TlsClient {
 public:
  explicit TlsClient(ClientTls tls);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  Answer get(const std::string& url) { return request("GET", url, "", {}); }
  // `headers`: "Name: value" lines; a body is sent with POST (any other method: none).
  Answer request(const std::string& method, const std::string& url, const std::string& body,
                 const std::vector<std::string>& headers);

 private:
  ClientTls tls_;
  void* h_;  // CURL*
};

}  // namespace relais::testing
