#pragma once
// What the API server's TLS is made of (server.tls of the configuration, read by
// routing/hub_config.cpp, used by api/tls_server.*): plain data, no OpenSSL here.

#include <string>

namespace relais {

enum class ClientCertificates {
  None,      // no client certificate asked for
  Optional,  // asked for; a client without one is served (a certificate sent must be valid)
  Required,  // a client without a valid certificate is refused at the handshake
};

// Paths are absolute (resolved from the configuration's folder) and read again at each reload.
struct TlsServerOptions {
  std::string certificate;          // PEM: the server's certificate, then the intermediates
  std::string key;                  // PEM private key (encrypted when key_password_file is set)
  std::string key_password_file;    // "" = the key is not encrypted; one line, the password
  std::string min_version = "1.2";  // "1.2" or "1.3"
  std::string client_ca;            // PEM bundle of the CAs of client certificates ("" = none)
  ClientCertificates client_certificates = ClientCertificates::None;
  bool enabled() const { return !certificate.empty(); }  // false: plain HTTP
};

}  // namespace relais
