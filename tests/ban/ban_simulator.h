#pragma once
// A BAN simulator for the tests: an in-process HTTP server (relais::tools::HttpSink) answering
// /search, /reverse and /search/csv with the real recorded responses of
// ${RELAIS_SHARED_DIR}/fixtures/ban/. Strict about what it receives: a /search without q, with
// limit other than 1, or with a type other than the expected one is answered 400 and recorded
// as a violation (tests assert there are none). Programmable failures: 429 with Retry-After,
// 5xx, slow answers.

#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "connectors/ban/ban.h"
#include "tests/support/sim_text.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {

inline std::string ban_fixture(const std::string& name) {
  return read_text(std::string(RELAIS_SHARED_DIR) + "/fixtures/ban/" + name);
}

// One part of a multipart/form-data body.
struct FormPart {
  std::string name;
  std::string filename;
  std::string data;
};

inline std::vector<FormPart> parse_multipart(const std::string& content_type,
                                             const std::string& body) {
  std::vector<FormPart> parts;
  auto b = content_type.find("boundary=");
  if (b == std::string::npos) return parts;
  std::string boundary = content_type.substr(b + 9);
  if (!boundary.empty() && boundary.front() == '"') {
    boundary = boundary.substr(1, boundary.find('"', 1) - 1);
  }
  std::string delim = "--" + boundary;
  size_t pos = body.find(delim);
  while (pos != std::string::npos) {
    pos += delim.size();
    if (body.compare(pos, 2, "--") == 0) break;
    pos += 2;  // CRLF
    size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) break;
    std::string head = body.substr(pos, head_end - pos);
    size_t next = body.find("\r\n" + delim, head_end + 4);
    if (next == std::string::npos) break;
    FormPart p;
    p.data = body.substr(head_end + 4, next - head_end - 4);
    auto field = [&head](const std::string& key) -> std::string {
      auto k = head.find(key + "=\"");
      if (k == std::string::npos) return "";
      k += key.size() + 2;
      return head.substr(k, head.find('"', k) - k);
    };
    p.name = field("name");
    p.filename = field("filename");
    parts.push_back(std::move(p));
    pos = next + 2;
  }
  return parts;
}

// A programmed answer.
struct SimReply {
  int status = 200;
  std::string body;
  std::map<std::string, std::string> headers;
  int delay_ms = 0;
};

// One request the simulator saw.
struct SimHit {
  std::string path;  // without query
  std::map<std::string, std::vector<std::string>> params;
  std::chrono::steady_clock::time_point at;
  int64_t wall_ms = 0;
};

// Thread-safe; owns its HTTP server.
class BanSimulator {
 public:
  BanSimulator() : sink_(0, true, 16) {
    sink_.set_responder([this](const tools::SinkRequest& r) { return answer(r); });
  }
  // Waits (up to 5 s) for the answers still being written, e.g. a slow answer whose client
  // already timed out: HttpSink's destructor does not wait for its handlers.
  ~BanSimulator() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (sink_.total() < hit_count() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    sink_.set_responder(nullptr);
  }

  std::string base() const { return "http://127.0.0.1:" + std::to_string(sink_.port()); }
  std::string search_url() const { return base() + "/geocodage/search"; }
  std::string reverse_url() const { return base() + "/geocodage/reverse"; }
  std::string csv_url() const { return base() + "/geocodage/search/csv"; }

  // A /search whose normalised q contains `needle` gets `reply` (first match wins);
  // anything else gets the recorded "no result" answer.
  void on_query(const std::string& needle, SimReply reply) {
    std::lock_guard<std::mutex> lock(mu_);
    rules_.emplace_back(ban::normalise(needle), std::move(reply));
  }
  void on_query_fixture(const std::string& needle, const std::string& fixture) {
    on_query(needle, SimReply{200, ban_fixture(fixture), {}, 0});
  }
  // The next n requests (any path) get `reply` instead.
  void fail_next(int n, SimReply reply) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_left_ = n;
    failure_ = std::move(reply);
  }
  // The type filter /search must carry ("" = none at all).
  void expect_type(std::string t) {
    std::lock_guard<std::mutex> lock(mu_);
    expected_type_ = std::move(t);
  }

  std::vector<SimHit> hits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return hits_;
  }
  size_t hit_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return hits_.size();
  }
  std::vector<std::string> violations() const {
    std::lock_guard<std::mutex> lock(mu_);
    return violations_;
  }
  // The CSV files received by /search/csv, and their `columns` / filter fields.
  std::vector<std::vector<FormPart>> csv_requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return csv_requests_;
  }

 private:
  tools::SinkResponse reply(const SimReply& r) {
    if (r.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(r.delay_ms));
    tools::SinkResponse out;
    out.status = r.status;
    out.body = r.body;
    out.headers = r.headers;
    return out;
  }

  tools::SinkResponse bad(const std::string& why) {
    violations_.push_back(why);
    tools::SinkResponse out;
    out.status = 400;
    out.body = R"({"code":400,"message":")" + why + "\"}";
    return out;
  }

  tools::SinkResponse answer(const tools::SinkRequest& r) {
    SimHit hit;
    hit.at = std::chrono::steady_clock::now();
    hit.wall_ms = SystemClock::instance().now_ms();
    hit.path = r.path.substr(0, r.path.find('?'));
    hit.params = query_params(r.path);
    SimReply chosen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hits_.push_back(hit);
      if (failures_left_ > 0) {
        --failures_left_;
        chosen = failure_;
      } else if (hit.path == "/geocodage/search/csv") {
        if (r.method != "POST") return bad("csv: expected POST");
        auto ct = r.headers.find("content-type");
        if (ct == r.headers.end() || ct->second.find("multipart/form-data") != 0) {
          return bad("csv: expected multipart/form-data");
        }
        auto parts = parse_multipart(ct->second, r.body);
        csv_requests_.push_back(parts);
        chosen = csv_answer(parts);
        if (chosen.status == 400) return bad(chosen.body);
      } else if (hit.path == "/geocodage/reverse") {
        if (hit.params["lon"].size() != 1 || hit.params["lat"].size() != 1) {
          return bad("reverse: lon and lat are required");
        }
        chosen = SimReply{200, ban_fixture("reverse-housenumber-cergy-legacy.json"), {}, 0};
      } else if (hit.path == "/geocodage/search") {
        auto& p = hit.params;
        if (p["q"].size() != 1 || p["q"][0].size() < 3) return bad("q must have 3 characters");
        if (p["limit"] != std::vector<std::string>{"1"}) return bad("limit must be 1");
        if (expected_type_.empty() ? p.count("type") && !p["type"].empty()
                                   : p["type"] != std::vector<std::string>{expected_type_}) {
          return bad("unexpected type filter");
        }
        std::string q = ban::normalise(p["q"][0]);
        chosen = SimReply{200, ban_fixture("search-no-result.json"), {}, 0};
        for (const auto& [needle, rep] : rules_) {
          if (q.find(needle) != std::string::npos) {
            chosen = rep;
            break;
          }
        }
      } else {
        tools::SinkResponse nf;
        nf.status = 404;
        return nf;
      }
    }
    return reply(chosen);
  }

  // Answers a /search/csv: every row whose `voie` mentions Kléber is found (the recorded
  // housenumber answer), the others are not.
  SimReply csv_answer(const std::vector<FormPart>& parts) {
    const FormPart* data = nullptr;
    std::vector<std::string> columns;
    for (const auto& p : parts) {
      if (p.name == "data") data = &p;
      if (p.name == "columns") columns.push_back(p.data);
    }
    if (data == nullptr || data->filename.empty()) return SimReply{400, "csv: no data file"};
    if (columns.empty()) return SimReply{400, "csv: no columns"};
    auto rows = ban::csv_parse(data->data);
    if (rows.empty()) return SimReply{400, "csv: empty file"};
    std::map<std::string, size_t> col;
    for (size_t i = 0; i < rows[0].size(); ++i) col[rows[0][i]] = i;
    for (const auto& c : columns) {
      if (!col.count(c)) return SimReply{400, "csv: unknown column " + c};
    }
    nlohmann::json f =
        nlohmann::json::parse(ban_fixture("search-housenumber-20-avenue-kleber-paris.json"));
    const auto& pr = f["features"][0]["properties"];
    std::string out;
    for (size_t i = 0; i < rows[0].size(); ++i) out += ban::csv_escape(rows[0][i]) + ",";
    out +=
        "latitude,longitude,result_label,result_score,result_score_next,result_type,result_id,"
        "result_housenumber,result_name,result_street,result_postcode,result_city,"
        "result_context,result_citycode,result_oldcitycode,result_oldcity,result_district,"
        "result_status\n";
    for (size_t r = 1; r < rows.size(); ++r) {
      std::string line;
      for (const auto& v : rows[r]) line += ban::csv_escape(v) + ",";
      std::string voie = col.count("voie") ? ban::normalise(rows[r][col["voie"]]) : "";
      if (voie.find("kleber") != std::string::npos) {
        line += "48.871176,2.292863," + ban::csv_escape(pr["label"].get<std::string>()) + "," +
                std::to_string(pr["score"].get<double>()) + ",,housenumber," +
                pr["id"].get<std::string>() + ",20," +
                ban::csv_escape(pr["name"].get<std::string>()) + "," +
                ban::csv_escape(pr["street"].get<std::string>()) + ",75016,Paris," +
                ban::csv_escape(pr["context"].get<std::string>()) + ",75116,,,," + "ok";
      } else {
        line += ",,,,,,,,,,,,,,,,,not-found";
      }
      out += line + "\n";
    }
    return SimReply{200, out};
  }

  tools::HttpSink sink_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, SimReply>> rules_;
  int failures_left_ = 0;
  SimReply failure_;
  std::string expected_type_ = "housenumber";
  std::vector<SimHit> hits_;
  std::vector<std::string> violations_;
  std::vector<std::vector<FormPart>> csv_requests_;
};

}  // namespace relais::testing
