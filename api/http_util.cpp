#include "api/http_util.h"

#include <Poco/URI.h>

#include <algorithm>

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
    std::string decoded;
    Poco::URI::decode(path.substr(start, end - start), decoded);
    out.push_back(decoded);
    start = end + 1;
  }
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
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
    send_error(resp, 400, perr.error, perr.detail, perr.extra);
    return false;
  }
  if (!out.is_object()) {
    send_error(resp, 400, "expected a JSON object", "the body must be a JSON object");
    return false;
  }
  return true;
}

}  // namespace relais::api
