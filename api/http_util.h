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
// Reads the request body up to `limit` bytes; false when it is larger. Once the whole body is
// read, the connection may be kept alive again (see refuse_keep_alive_until_read).
bool read_body(Poco::Net::HTTPServerRequest& req, int64_t limit, std::string& out,
               Poco::Net::HTTPServerResponse* resp = nullptr);
// A request with a body whose body is not read (early errors) would leave it on the
// connection: close the connection unless read_body later reads it all.
void refuse_keep_alive_until_read(Poco::Net::HTTPServerRequest& req,
                                  Poco::Net::HTTPServerResponse& resp);
// "/api/v1/a/b" → {"api","v1","a","b"} (percent-decoded).
std::vector<std::string> split_path(const std::string& path);
// Reads a JSON object body; on failure answers the error (400/413) and returns false.
bool read_json_object(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp,
                      int64_t limit, nlohmann::json& out);

}  // namespace relais::api
