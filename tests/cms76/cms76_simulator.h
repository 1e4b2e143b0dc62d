#pragma once
// A simulator of CMS76's RDV API (the booking's request–reply seam, connectors/booking/): POST
// /api/rdv with {cms, motif, professional, start, end, citizen} creates an RDV (201 {"id"}),
// refuses a slot already taken by that professional (409), answers a repeated Idempotency-Key
// with the first answer. Modes: slow (every answer waits), faulty (the next n requests get 503
// and create nothing), lost (the next n requests create the RDV, then the connection is cut
// without an answer). Loopback HTTP server (tools/sink), stopped with the object.
// Thread-safe: the sink's threads answer while the test reads the counts.

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/sink/http_sink.h"

namespace relais::testing {

class Cms76Simulator {
 public:
  struct Rdv {
    std::string id, cms, motif, professional, start, end;
    nlohmann::json citizen;
  };

  Cms76Simulator() : sink_(0, true, 64) {
    sink_.set_responder([this](const tools::SinkRequest& r) { return answer(r); });
  }
  ~Cms76Simulator() { sink_.set_responder(nullptr); }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(sink_.port()) + "/api/rdv";
  }

  void slow(int ms) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ms_ = ms;
  }
  void faulty(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = n;
  }
  void lose(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    lose_ = n;
  }
  // An RDV planned in CMS76 directly (at the desk), not yet in Outlook.
  void take(const std::string& professional, const std::string& start) {
    std::lock_guard<std::mutex> lock(mu_);
    taken_.insert(professional + "|" + start);
  }
  std::vector<Rdv> rdvs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return rdvs_;
  }
  int requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::vector<std::string> violations() const {
    std::lock_guard<std::mutex> lock(mu_);
    return violations_;
  }

 private:
  tools::SinkResponse reply(int status, const nlohmann::json& body) {
    tools::SinkResponse out;
    out.status = status;
    out.headers["Content-Type"] = "application/json";
    out.body = body.dump();
    return out;
  }

  tools::SinkResponse answer(const tools::SinkRequest& r) {
    int delay = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      delay = delay_ms_;
    }
    if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));  // slow mode
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_;
    if (r.method != "POST" || r.path != "/api/rdv") return reply(404, {{"error", "no such path"}});
    auto ct = r.headers.find("content-type");
    if (ct == r.headers.end() || ct->second.rfind("application/json", 0) != 0) {
      violations_.push_back("POST without Content-Type: application/json");
    }
    auto key = r.headers.find("idempotency-key");
    if (key == r.headers.end() || key->second.empty()) {
      violations_.push_back("POST without Idempotency-Key");
      return reply(400, {{"error", "Idempotency-Key required"}});
    }
    if (auto seen = answered_.find(key->second); seen != answered_.end()) return seen->second;
    if (fail_ > 0) {
      --fail_;
      return reply(503, {{"error", "service unavailable"}});
    }
    nlohmann::json b = nlohmann::json::parse(r.body, nullptr, false);
    for (const char* k : {"cms", "motif", "professional", "start", "end"}) {
      if (!b.is_object() || !b.contains(k) || !b[k].is_string()) {
        return reply(400, {{"error", std::string("missing ") + k}});
      }
    }
    if (!b.contains("citizen") || !b["citizen"].is_object()) {
      return reply(400, {{"error", "missing citizen"}});
    }
    const std::string slot =
        b["professional"].get<std::string>() + "|" + b["start"].get<std::string>();
    tools::SinkResponse out;
    if (!taken_.insert(slot).second) {
      out = reply(409, {{"error", "créneau déjà pris"}});
    } else {
      Rdv rdv{"RDV-" + std::to_string(rdvs_.size() + 1),
              b["cms"],
              b["motif"],
              b["professional"],
              b["start"],
              b["end"],
              b["citizen"]};
      rdvs_.push_back(rdv);
      out = reply(201, {{"id", rdv.id}});
    }
    answered_[key->second] = out;
    if (lose_ > 0 && out.status == 201) {
      --lose_;
      tools::SinkResponse cut;
      cut.reset = true;
      return cut;
    }
    return out;
  }

  tools::HttpSink sink_;
  mutable std::mutex mu_;
  int delay_ms_ = 0, fail_ = 0, lose_ = 0, requests_ = 0;
  std::set<std::string> taken_;
  std::vector<Rdv> rdvs_;
  std::map<std::string, tools::SinkResponse> answered_;
  std::vector<std::string> violations_;
};

}  // namespace relais::testing
