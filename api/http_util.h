#pragma once
// Small helpers shared by the API handlers: JSON answers, errors, bodies and paths.
// Stateless, thread-safe.

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace relais::api {

std::string lower(std::string s);
void send_json(Poco::Net::HTTPServerResponse& resp, int status, const nlohmann::json& body);
// Every error is {"error", "detail"} plus optional extra fields (e.g. position, diagnostics).
void send_error(Poco::Net::HTTPServerResponse& resp, int status, const std::string& error,
                const std::string& detail, const nlohmann::json& extra = nlohmann::json::object());
// Reads the request body up to `limit` bytes; false when it is larger.
bool read_body(Poco::Net::HTTPServerRequest& req, int64_t limit, std::string& out);
// "/api/v1/a/b" → {"api","v1","a","b"} (percent-decoded).
std::vector<std::string> split_path(const std::string& path);
// Reads a JSON object body; on failure answers the error (400/413) and returns false.
bool read_json_object(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp,
                      int64_t limit, nlohmann::json& out);

}  // namespace relais::api
