#pragma once
// SOAP 1.1 pieces shared by every SOAP partner (Genesis, Capdémat): the envelope and the
// WS-Security UsernameToken header (OASIS 2004 profile). Pure functions: stateless, thread-safe,
// never throw.

#include <string>

#include "core/config_spec.h"

namespace relais::soap {

inline constexpr const char* kSoapNs = "http://schemas.xmlsoap.org/soap/envelope/";
inline constexpr const char* kWsseNs =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
inline constexpr const char* kWsuNs =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
inline constexpr const char* kPasswordText =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordText";
inline constexpr const char* kPasswordDigest =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest";
inline constexpr const char* kBase64Binary =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0"
    "#Base64Binary";

// A WS-Security header (OASIS 2004 UsernameToken) to put in soap:Header: PasswordText, or
// PasswordDigest = Base64(SHA-1(nonce + created + password)) with the Nonce; Created in both.
struct WsseToken {
  std::string username;
  std::string password;
  bool digest = false;
};
// The `wss:` block of a SOAP connector's configuration (username, password_file or
// password_env, digest) and the token it describes. Start-up only: throws std::runtime_error
// naming `where` when the password cannot be read.
const ConfigSpec& wss_spec();
WsseToken wsse_token_from(const ConfigView& wss, const std::string& where);
// The configuration check of a `wss:` block: "" or what is wrong (exactly one of password_file
// and password_env).
std::string wss_problem(const ConfigView& wss);
// `nonce`: raw bytes (16 random ones in production); `created`: UTC, e.g.
// 2026-12-07T08:00:00.000Z (format_rfc3339).
std::string wsse_header(const WsseToken& t, const std::string& nonce, const std::string& created);
// Base64(SHA-1(nonce + created + password)), as the digest is computed by both sides.
std::string wsse_digest(const std::string& nonce, const std::string& created,
                        const std::string& password);
// 16 random bytes for a nonce; "" when the system has no random bytes to give.
std::string wsse_nonce();

// `v` escaped for XML text and attribute values (& < > " ').
std::string xml_escape(const std::string& v);

// The SOAP 1.1 envelope around `body_xml` (one or more elements, with their own namespace
// declarations) with `header_xml` (may be empty) in soap:Header. A leading XML declaration of
// `body_xml` is dropped (one per document).
std::string soap_envelope(const std::string& header_xml, const std::string& body_xml);

}  // namespace relais::soap
