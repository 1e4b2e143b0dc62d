#include "api/http_util.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <algorithm>
#include <string_view>

#include "core/json_reader.h"
#include "routing/hub.h"

namespace relais::api {

using json = nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

void send_json(Poco::Net::HTTPServerResponse& resp, int status, const json& body) {
  std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
  resp.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
  resp.setContentType("application/json");
  resp.setContentLength(static_cast<std::streamsize>(text.size()));
  resp.send() << text;
}

void send_error(Poco::Net::HTTPServerResponse& resp, int status, const std::string& error,
                const std::string& detail, const json& extra) {
  json body = {{"error", error}, {"detail", detail}};
  for (auto it = extra.begin(); it != extra.end(); ++it) body[it.key()] = it.value();
  send_json(resp, status, body);
}

bool read_body(Poco::Net::HTTPServerRequest& req, int64_t limit, std::string& out,
               Poco::Net::HTTPServerResponse* resp) {
  // A declared length over the limit is refused without reading (the server did not read it).
  if (req.hasContentLength() && req.getContentLength64() > limit) return false;
  std::istream& in = req.stream();
  char buf[16384];
  while (in) {
    in.read(buf, sizeof buf);
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    if (static_cast<int64_t>(out.size()) + n > limit) return false;
    out.append(buf, static_cast<size_t>(n));
  }
  if (resp != nullptr) resp->setKeepAlive(req.getKeepAlive());
  return true;
}

void refuse_keep_alive_until_read(Poco::Net::HTTPServerRequest& req,
                                  Poco::Net::HTTPServerResponse& resp) {
  bool has_body =
      req.getChunkedTransferEncoding() || (req.hasContentLength() && req.getContentLength64() > 0);
  if (has_body) resp.setKeepAlive(false);
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// The offset of the first '%' not followed by two hexadecimal digits, or npos.
size_t bad_escape(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return i;
    i += 2;
  }
  return std::string_view::npos;
}

}  // namespace

bool parse_target(const std::string& target, Poco::URI& out, Poco::Net::HTTPServerResponse& resp) {
  std::string_view t(target);
  size_t q = t.find('?');
  std::string part = "path";
  size_t bad = bad_escape(t.substr(0, q));
  if (bad == std::string_view::npos && q != std::string_view::npos) {
    part = "query";
    bad = bad_escape(t.substr(q + 1));
    if (bad != std::string_view::npos) bad += q + 1;
  }
  if (bad != std::string_view::npos) {
    send_error(resp, 400, "malformed URI",
               "the " + part + " has a %-escape that does not decode at character " +
                   std::to_string(bad + 1) + ": '%' must be followed by two hexadecimal digits",
               {{"part", part}, {"offset", bad}});
    return false;
  }
  try {
    out = Poco::URI(target);
    out.getQueryParameters();  // decodes the query once here, so that later reads cannot throw
  } catch (const Poco::Exception&) {
    send_error(resp, 400, "malformed URI", "the request target is not a valid URI",
               {{"part", "target"}});
    return false;
  }
  return true;
}

std::string path_for_log(const std::string& target) {
  return target.substr(0, target.find('?'));
}

std::string exception_for_log(const std::exception& e) {
  if (const auto* j = dynamic_cast<const nlohmann::json::exception*>(&e)) {
    return "JSON exception " + std::to_string(j->id);
  }
  if (const auto* p = dynamic_cast<const Poco::Exception*>(&e)) {
    return std::string(p->className()) + " (" + p->name() + ")";
  }
  std::string what = e.what();
  if (what.size() > 200) what = what.substr(0, 200) + "…";
  return what;
}

json stored_view(const std::string& text, size_t max_depth) {
  json parsed = read_stored_json(text, max_depth);
  return parsed.is_discarded() ? json(text) : parsed;
}

bool read_json_object(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp,
                      int64_t limit, json& out) {
  std::string body;
  if (!read_body(req, limit, body, &resp)) {
    resp.setKeepAlive(false);
    send_error(resp, 413, "payload too large",
               "the body exceeds " + std::to_string(limit) + " bytes");
    return false;
  }
  AcceptResponse perr;
  if (!parse_json_body(body.empty() ? "{}" : body, out, perr)) {
    send_error(resp, perr.status, perr.error, perr.detail, perr.extra);
    return false;
  }
  if (!out.is_object()) {
    send_error(resp, 400, "expected a JSON object", "the body must be a JSON object");
    return false;
  }
  return true;
}

namespace {

bool secret_name(std::string name) {
  name = lower(std::move(name));
  for (const char* w :
       {"token", "password", "passwd", "pwd", "key", "secret", "sig", "auth", "credential"}) {
    if (name.find(w) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string redact_url(const std::string& text) {
  static const std::string kMask = "•••";
  std::string out = text;
  // userinfo: scheme://user:pass@host — the password goes.
  for (size_t p = out.find("://"); p != std::string::npos; p = out.find("://", p + 3)) {
    size_t start = p + 3;
    size_t end = out.find_first_of("/?#", start);
    size_t at = out.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at == std::string::npos || at < start) continue;
    size_t colon = out.find(':', start);
    if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, kMask);
  }
  // query (and fragment) parameters: name=value pairs after '?', '&' or ';'.
  size_t q = out.find('?');
  if (q == std::string::npos) return out;
  std::string result = out.substr(0, q + 1);
  size_t pos = q + 1;
  while (pos <= out.size()) {
    size_t amp = out.find_first_of("&;#", pos);
    std::string pair = out.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    size_t eq = pair.find('=');
    if (eq != std::string::npos && secret_name(pair.substr(0, eq)) && eq + 1 < pair.size()) {
      pair = pair.substr(0, eq + 1) + kMask;
    }
    result += pair;
    if (amp == std::string::npos) break;
    result += out[amp];
    pos = amp + 1;
  }
  return result;
}

}  // namespace relais::api
