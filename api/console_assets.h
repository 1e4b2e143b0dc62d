#pragma once
// The console's static assets (console/*.html|css|js) and the OpenAPI document
// (api/openapi.json), built into the binary by CMake (api/embed_assets.cmake): no file to
// install, no outside request. Stateless, thread-safe.

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <cstddef>
#include <string>
#include <vector>

namespace relais::api {

struct EmbeddedAsset {
  const char* name;  // file name, e.g. "app.js"
  const unsigned char* data;
  size_t size;
};
// Generated: every embedded file.
const std::vector<EmbeddedAsset>& embedded_assets();

// GET /console/... : the asset (index.html for /console/), with a strict Content-Security-Policy.
void serve_console_asset(const std::string& path, Poco::Net::HTTPServerRequest& req,
                         Poco::Net::HTTPServerResponse& resp);
// GET /api/v1/openapi.json
void serve_openapi(Poco::Net::HTTPServerResponse& resp);

}  // namespace relais::api
