#pragma once
// Throwaway certificates for the TLS tests, made at test time with OpenSSL's C API (no CLI, no
// fixture): a CA, server certificates (localhost and 127.0.0.1) and client certificates it
// signs, written as PEM (and PKCS#12) files in a directory the caller owns. P-256 keys, valid
// from an hour ago for two days. Not thread-safe (one Pki per test); owns its OpenSSL objects.

#include <memory>
#include <string>

namespace relais::testing {

// A key and its certificate, as files.
struct IssuedCert {
  std::string cert;    // PEM certificate (leaf only)
  std::string key;     // PEM private key (not encrypted)
  std::string sha256;  // fingerprint of the DER, lower-case hex without colons
};

class Pki {
 public:
  // A new CA (subject CN=`name`) whose files go to `dir`/`name`-ca.pem and -ca.key.
  Pki(std::string dir, std::string name);
  ~Pki();
  Pki(const Pki&) = delete;
  Pki& operator=(const Pki&) = delete;

  const std::string& ca_file() const { return ca_file_; }
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

}  // namespace relais::testing
