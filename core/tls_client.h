#pragma once
// The `tls:` block of every outbound client that speaks through libcurl (the http destination,
// calendars, SMS gateways, the BAN enricher, the alerts' webhook): the CA bundle the partner's
// certificate must chain to, and the client certificate relais presents (mutual TLS: PEM, or
// PKCS#12), its key and the key's password — from a file or an environment variable, never
// written in the YAML. Declared once (tls_client_spec), checked once (check_tls_client), read
// once (read_tls_client); connectors/http/curl_capture.* applies it to a transfer.
// Stateless, thread-safe.

#include <string>
#include <vector>

#include "core/config_spec.h"

namespace relais {

struct TlsClientOptions {
  std::string ca_file;              // "" = the system's CA store (or the connector's ca_file)
  std::string client_certificate;   // "" = no client certificate
  std::string client_key;           // PEM key (format pem; "" = inside client_certificate)
  std::string client_key_password;  // the password itself, read at start-up; never logged
  std::string format = "pem";       // pem | p12 (PKCS#12 holds the certificate and the key)
};

// The keys of a `tls:` block.
const ConfigSpec& tls_client_spec();
// The `tls` key itself, for a connector's spec (an Object of tls_client_spec).
FieldSpec tls_client_field();

// Checks a validated `tls` block (`block.path()` names it): client_key with a PEM certificate
// only, one password source at most. Appends errors.
void check_tls_client(const ConfigView& block, const std::string& file,
                      std::vector<ConfigError>& errors);

// Reads a `tls` block at start-up: the files must exist; the password is read from its file
// (first line) or its environment variable. Throws std::runtime_error naming `where` and the
// key (never the password) when something is missing.
TlsClientOptions read_tls_client(const ConfigView& block, const std::string& where);

}  // namespace relais
