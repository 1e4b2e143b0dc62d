#include "connectors/soap/wsse.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <pugixml.hpp>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "core/crypto.h"
#include "core/files.h"

namespace relais::soap {

const ConfigSpec& wss_spec() {
  using F = FieldType;
  static const ConfigSpec s{
      "wss",
      {
          {"username", F::String, "", true, "WS-Security UsernameToken: the account"},
          {"password_file", F::String, "", false, "file whose first line is the password"},
          {"password_env", F::String, "", false, "environment variable holding the password"},
          {"digest", F::Bool, "false", false,
           "true: PasswordDigest (Base64(SHA-1(nonce + created + password))); false: "
           "PasswordText (only over TLS)"},
      }};
  return s;
}

std::string wss_problem(const ConfigView& w) {
  if (w.has("password_file") == w.has("password_env")) {
    return "give exactly one of password_file and password_env";
  }
  return {};
}

WsseToken wsse_token_from(const ConfigView& w, const std::string& where) {
  WsseToken t;
  t.username = w.str("username");
  t.digest = w.boolean("digest");
  if (w.has("password_file")) {
    if (!read_text_file(w.str("password_file"), t.password)) {
      throw std::runtime_error(where + ": wss.password_file: cannot read " +
                               w.str("password_file"));
    }
    t.password = t.password.substr(0, t.password.find('\n'));
    if (!t.password.empty() && t.password.back() == '\r') t.password.pop_back();
  } else if (w.has("password_env")) {
    const char* v = std::getenv(w.str("password_env").c_str());
    if (v == nullptr) {
      throw std::runtime_error(where + ": wss.password_env: the environment variable " +
                               w.str("password_env") + " is not set");
    }
    t.password = v;
  }
  return t;
}

std::string wsse_digest(const std::string& nonce, const std::string& created,
                        const std::string& password) {
  std::string data = nonce + created + password;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr) != 1) return {};
  return base64_encode(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string xml_escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string wsse_nonce() {
  unsigned char nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1) return {};
  return std::string(reinterpret_cast<char*>(nonce), sizeof nonce);
}

std::string wsse_header(const WsseToken& t, const std::string& nonce, const std::string& created) {
  pugi::xml_document doc;
  auto sec = doc.append_child("wsse:Security");
  sec.append_attribute("xmlns:wsse") = kWsseNs;
  sec.append_attribute("xmlns:wsu") = kWsuNs;
  sec.append_attribute("soap:mustUnderstand") = "1";
  auto tok = sec.append_child("wsse:UsernameToken");
  tok.append_child("wsse:Username").text().set(t.username.c_str());
  auto pw = tok.append_child("wsse:Password");
  pw.append_attribute("Type") = t.digest ? kPasswordDigest : kPasswordText;
  pw.text().set(t.digest ? wsse_digest(nonce, created, t.password).c_str() : t.password.c_str());
  auto n = tok.append_child("wsse:Nonce");
  n.append_attribute("EncodingType") = kBase64Binary;
  n.text().set(base64_encode(nonce).c_str());
  tok.append_child("wsu:Created").text().set(created.c_str());
  std::ostringstream s;
  doc.save(s, "", pugi::format_raw | pugi::format_no_declaration, pugi::encoding_utf8);
  return s.str();
}

std::string soap_envelope(const std::string& header_xml, const std::string& body_xml) {
  std::string body = body_xml;
  if (body.rfind("<?xml", 0) == 0) {
    auto end = body.find("?>");
    body = end == std::string::npos ? std::string() : body.substr(end + 2);
  }
  std::string out = "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"";
  out += kSoapNs;
  out += "\"><soap:Header>";
  out += header_xml;
  out += "</soap:Header><soap:Body>";
  out += body;
  out += "</soap:Body></soap:Envelope>";
  return out;
}

}  // namespace relais::soap
