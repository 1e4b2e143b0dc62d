#pragma once
// A simulator of OVH's SMS API (POST /1.0/sms/{service}/jobs, GET /1.0/auth/time) for the
// tests: it checks the application key, the consumer key, the timestamp and the request
// signature ("$1$" + SHA-1 of AS+CK+METHOD+URL+BODY+TIMESTAMP joined by '+') like OVH does, and
// refuses a bad one with OVH's error shape ({"errorCode":"INVALID_SIGNATURE",
// "httpCode":"400 Bad Request","message":"Invalid signature"}); a timestamp more than 180 s
// from its own clock is refused too (QUERY_TIME_OUT). Jobs it accepts get an id.
//
// Thread-safe (the sink serves on a pool; the job list is locked). Owns its HTTP server.

#include <openssl/evp.h>

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/sink/http_sink.h"

namespace relais::testing {

class OvhSimulator {
 public:
  struct Job {
    int64_t id = 0;
    nlohmann::json body;
  };

  // `clock_offset_s`: how far OVH's clock is from ours (it signs and checks with its own).
  OvhSimulator(std::string service, std::string ak, std::string as, std::string ck,
               int64_t clock_offset_s = 0)
      : service_(std::move(service)),
        ak_(std::move(ak)),
        as_(std::move(as)),
        ck_(std::move(ck)),
        offset_s_(clock_offset_s) {
    sink_.set_responder([this](const tools::SinkRequest& r) { return answer(r); });
  }

  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(sink_.port()) + "/1.0";
  }
  std::vector<Job> jobs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return jobs_;
  }
  int refused() const {
    std::lock_guard<std::mutex> lock(mu_);
    return refused_;
  }

 private:
  static std::string sha1_hex(const std::string& s) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_Digest(s.data(), s.size(), md, &len, EVP_sha1(), nullptr);
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
      out += d[md[i] >> 4];
      out += d[md[i] & 15];
    }
    return out;
  }
  static tools::SinkResponse json_answer(int status, const nlohmann::json& body) {
    tools::SinkResponse r;
    r.status = status;
    r.headers["Content-Type"] = "application/json; charset=utf-8";
    r.body = body.dump();
    return r;
  }
  tools::SinkResponse error(int status, const std::string& code, const std::string& http,
                            const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++refused_;
    }
    return json_answer(status, {{"errorCode", code}, {"httpCode", http}, {"message", message}});
  }
  std::string header(const tools::SinkRequest& r, const std::string& name) const {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? "" : it->second;
  }

  tools::SinkResponse answer(const tools::SinkRequest& r) {
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count() +
                  offset_s_;
    if (r.method == "GET" && r.path == "/1.0/auth/time") return json_answer(200, now);
    std::string jobs_path = "/1.0/sms/" + service_ + "/jobs";
    if (r.path.rfind("/1.0/sms/", 0) == 0 && r.path != jobs_path) {
      return json_answer(404, {{"message", "The requested object (serviceName) does not exist"}});
    }
    if (r.path != jobs_path || r.method != "POST") {
      return json_answer(404, {{"message", "Got an invalid (or empty) URL"}});
    }
    if (header(r, "x-ovh-application") != ak_) {
      return error(403, "INVALID_KEY", "403 Forbidden", "This application key is invalid");
    }
    if (header(r, "x-ovh-consumer") != ck_) {
      return error(403, "INVALID_CREDENTIAL", "403 Forbidden", "This credential does not exist");
    }
    std::string ts = header(r, "x-ovh-timestamp");
    int64_t t = 0;
    try {
      t = std::stoll(ts);
    } catch (const std::exception&) {
      return error(400, "INVALID_SIGNATURE", "400 Bad Request", "Invalid signature");
    }
    if (t < now - 180 || t > now + 180) {
      return error(400, "QUERY_TIME_OUT", "400 Bad Request", "Query out of time");
    }
    // The URL as the client named it (through a proxy too: the Host it sent).
    std::string host = header(r, "host");
    std::string url = host.empty() ? endpoint() + r.path.substr(4) : "http://" + host + r.path;
    std::string expected =
        "$1$" + sha1_hex(as_ + "+" + ck_ + "+" + r.method + "+" + url + "+" + r.body + "+" + ts);
    if (header(r, "x-ovh-signature") != expected) {
      return error(400, "INVALID_SIGNATURE", "400 Bad Request", "Invalid signature");
    }
    nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
    if (!body.is_object() || !body.contains("message") || !body["message"].is_string() ||
        body["message"].get<std::string>().empty()) {
      return json_answer(400, {{"message", "Invalid parameter message"}});
    }
    if (!body.contains("receivers") || !body["receivers"].is_array()) {
      return json_answer(400, {{"message", "Missing receivers"}});
    }
    nlohmann::json valid = nlohmann::json::array(), invalid = nlohmann::json::array();
    for (const auto& to : body["receivers"]) {
      std::string n = to.is_string() ? to.get<std::string>() : "";
      (n.size() > 8 && n[0] == '+' ? valid : invalid).push_back(n);
    }
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json ids = nlohmann::json::array();
    if (!valid.empty()) {
      int64_t id = 264000000 + static_cast<int64_t>(jobs_.size()) + 1;
      jobs_.push_back(Job{id, body});
      ids.push_back(id);
    }
    return json_answer(200, {{"ids", ids},
                             {"invalidReceivers", invalid},
                             {"totalCreditsRemoved", valid.size()},
                             {"validReceivers", valid},
                             {"tag", body.value("tag", "")}});
  }

  std::string service_, ak_, as_, ck_;
  int64_t offset_s_ = 0;
  mutable std::mutex mu_;
  std::vector<Job> jobs_;
  int refused_ = 0;
  tools::HttpSink sink_;  // last: stops serving before the members above go away
};

}  // namespace relais::testing
