#include "api/console_assets.h"

#include "api/http_util.h"

namespace relais::api {
namespace {

const EmbeddedAsset* find_asset(const std::string& name) {
  for (const auto& a : embedded_assets()) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

std::string content_type_of(const std::string& name) {
  auto ends = [&](const char* ext) {
    std::string e = ext;
    return name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".json")) return "application/json";
  if (ends(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

void send_asset(const EmbeddedAsset& a, Poco::Net::HTTPServerResponse& resp) {
  resp.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
  resp.setContentType(content_type_of(a.name));
  resp.set("Cache-Control", "no-cache");
  resp.set("X-Content-Type-Options", "nosniff");
  resp.set("Referrer-Policy", "no-referrer");
  resp.set("X-Frame-Options", "DENY");
  resp.set("Content-Security-Policy",
           "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  resp.setContentLength(static_cast<std::streamsize>(a.size));
  resp.send().write(reinterpret_cast<const char*>(a.data), static_cast<std::streamsize>(a.size));
}

}  // namespace

void serve_console_asset(const std::string& path, Poco::Net::HTTPServerRequest&,
                         Poco::Net::HTTPServerResponse& resp) {
  if (path == "/" || path == "/console") {
    resp.redirect("/console/");
    return;
  }
  std::string name = path.substr(std::string("/console/").size());
  if (name.empty()) name = "index.html";
  const EmbeddedAsset* a =
      (name.find('/') == std::string::npos && name != "openapi.json") ? find_asset(name) : nullptr;
  if (a == nullptr) {
    send_error(resp, 404, "not found", "no console file " + path);
    return;
  }
  send_asset(*a, resp);
}

void serve_openapi(Poco::Net::HTTPServerResponse& resp) {
  const EmbeddedAsset* a = find_asset("openapi.json");
  if (a == nullptr) {
    send_error(resp, 500, "internal error", "the OpenAPI document is not built in");
    return;
  }
  send_asset(*a, resp);
}

}  // namespace relais::api
