#pragma once
// TLS for the API server (api/http_server.*): the server's OpenSSL context built from PEM files
// (certificate chain, key, optional key password file, minimum version, the CA that client
// certificates must chain to and whether a client certificate is asked for), and the verified
// client certificate of a connection (SHA-256 fingerprint and subject).
//
// A context is immutable once built and shared (std::shared_ptr) by the server and every
// connection created from it (SSL_new takes its own reference): a reload builds a new one and
// swaps the pointer; the connections already open keep theirs. Stateless functions otherwise;
// thread-safe.

#include <openssl/types.h>

#include <memory>
#include <optional>
#include <string>

#include "core/tls_options.h"

namespace relais::api {

// A client certificate the handshake verified against client_ca.
struct PeerCertificate {
  std::string sha256;   // of the DER, lower-case hex without colons (64 characters)
  std::string subject;  // RFC 2253 (may name a person: never logged)
};

// Builds a server context from the files. Returns nullptr and sets `error` (the key and the
// file, and what is wrong; never the password) when a file is missing or unreadable, the key
// does not match the certificate, or the CA file holds no certificate.
// TLS 1.2 minimum (or 1.3); for TLS 1.2 only ECDHE key exchange with AEAD ciphers; OpenSSL's
// defaults for TLS 1.3; no renegotiation, no compression.
std::shared_ptr<SSL_CTX> make_server_tls_context(const TlsServerOptions& options,
                                                 std::string& error);

// The client certificate of a completed handshake when one was sent and verified; else nothing.
std::optional<PeerCertificate> verified_peer_certificate(SSL* ssl);

// The SHA-256 fingerprint of a certificate (DER), lower-case hex without colons.
std::string certificate_sha256(X509* cert);

// The first error of OpenSSL's queue of this thread, as text (and the queue emptied).
std::string openssl_error_text();

}  // namespace relais::api
