#pragma once
// Small helpers shared by the API handlers: JSON answers, errors, bodies and paths.
// Stateless, thread-safe.

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/URI.h>

#include <exception>
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
// "/api/v1/a/b" → {"api","v1","a","b"}. The path is already percent-decoded (Poco::URI's
// getPath): decoding it again would turn "%2541" into "A" and "%25zz" into an exception.
std::vector<std::string> split_path(const std::string& path);
// Reads the request target into `out`. A '%' not followed by two hexadecimal digits (or any
// other syntax Poco::URI refuses) answers 400 "malformed URI" naming the part (path or query)
// and the offset, and returns false. After true, out.getQueryParameters() does not throw.
bool parse_target(const std::string& target, Poco::URI& out, Poco::Net::HTTPServerResponse& resp);
// The request target without its query, for logs: query values may be personal data.
std::string path_for_log(const std::string& target);
// What a log may say of an exception: its kind, and its message only when it cannot carry
// request data (nlohmann's parse errors quote the text read; Poco's messages quote URIs).
std::string exception_for_log(const std::exception& e);
// A stored text (message body, mapped payload) as a document for a view, read with the door's
// guards: one deeper than `max_depth`, or not JSON, is given as its text (a JSON string, which
// payload_for masks whole for every role but admin), so that no view walks a deep document.
nlohmann::json stored_view(const std::string& text, size_t max_depth);
// A URL (or any text holding one) as it may be shown: the password of a userinfo
// (`user:pass@host` → `user:•••@host`) and the values of query parameters whose names say
// secret (token, password, passwd, pwd, key, secret, sig, signature, auth, credential, in any
// case and as part of a name: access_token, api_key…) are replaced by "•••". Other text is
// returned unchanged.
std::string redact_url(const std::string& text);
// Reads a JSON object body; on failure answers the error (400/413) and returns false.
bool read_json_object(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp,
                      int64_t limit, nlohmann::json& out);

}  // namespace relais::api
