#include "core/tls_client.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "core/files.h"

namespace relais {

const ConfigSpec& tls_client_spec() {
  using F = FieldType;
  static const ConfigSpec s{
      "tls",
      {
          {"ca_file", F::String, "", false,
           "CA bundle (PEM) the partner's certificate must chain to (replaces the system's; "
           "wins over the connector's own ca_file)"},
          {"client_certificate", F::String, "", false,
           "client certificate presented to the partner (mutual TLS): a PEM file (certificate "
           "then intermediates), or a PKCS#12 file with format: p12"},
          {"client_key", F::String, "", false,
           "private key of a PEM client certificate (absent: the key is in client_certificate)"},
          {"client_key_password_file", F::String, "", false,
           "file whose first line is the password of the key (or of the PKCS#12 file)"},
          {"client_key_password_env", F::String, "", false,
           "environment variable holding the password of the key (or of the PKCS#12 file)"},
          {"format",
           F::String,
           "pem",
           false,
           "pem: client_certificate and client_key are PEM; p12: client_certificate is a "
           "PKCS#12 bundle (certificate and key)",
           {"pem", "p12"}},
      }};
  return s;
}

FieldSpec tls_client_field() {
  return FieldSpec{"tls",
                   FieldType::Object,
                   "",
                   false,
                   "TLS towards the partner: CA bundle and client certificate (docs/security.md, "
                   "\"TLS\")",
                   {},
                   &tls_client_spec()};
}

void check_tls_client(const ConfigView& b, const std::string& file,
                      std::vector<ConfigError>& errors) {
  if (b.has("client_key_password_file") && b.has("client_key_password_env")) {
    errors.push_back(
        error_at(b.node(), file, b.path(),
                 "give client_key_password_file or client_key_password_env, not both"));
  }
  if (b.str("format") == "p12" && b.has("client_key")) {
    errors.push_back(error_at(b.raw("client_key"), file, b.path() + ".client_key",
                              "a PKCS#12 client_certificate holds its key: no client_key"));
  }
  if (!b.has("client_certificate") && (b.has("client_key") || b.has("client_key_password_file") ||
                                       b.has("client_key_password_env"))) {
    errors.push_back(error_at(b.node(), file, b.path(),
                              "a client key or its password without client_certificate"));
  }
}

TlsClientOptions read_tls_client(const ConfigView& b, const std::string& where) {
  TlsClientOptions o;
  auto path_of = [&](const char* key) {
    std::string p = b.str(key);
    if (!p.empty() && !std::filesystem::is_regular_file(p)) {
      throw std::runtime_error(where + ": tls." + key + ": no such file: " + p);
    }
    return p;
  };
  o.ca_file = path_of("ca_file");
  o.client_certificate = path_of("client_certificate");
  o.client_key = path_of("client_key");
  o.format = b.str("format");
  if (b.has("client_key_password_file")) {
    std::string file = path_of("client_key_password_file");
    if (!read_text_file(file, o.client_key_password)) {
      throw std::runtime_error(where + ": tls.client_key_password_file: cannot read " + file);
    }
    o.client_key_password = o.client_key_password.substr(0, o.client_key_password.find('\n'));
    if (!o.client_key_password.empty() && o.client_key_password.back() == '\r') {
      o.client_key_password.pop_back();
    }
  } else if (b.has("client_key_password_env")) {
    const std::string name = b.str("client_key_password_env");
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) {
      throw std::runtime_error(where + ": tls.client_key_password_env: the environment variable " +
                               name + " is not set");
    }
    o.client_key_password = v;
  }
  return o;
}

}  // namespace relais
