#include "store/stored_values.h"

#include <algorithm>

#include "core/log.h"

namespace relais {

std::string headers_json(const std::map<std::string, std::string>& h) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : h) j[k] = v;
  return j.dump();
}

std::map<std::string, std::string> headers_from(const std::string& text) {
  std::map<std::string, std::string> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
    }
  }
  return out;
}

std::vector<std::string> flags_from(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_array()) {
    for (const auto& f : j) {
      if (f.is_string()) out.push_back(f.get<std::string>());
    }
  }
  return out;
}

QueuedDelivery queued_with_message(MessagePtr m, int64_t id, const std::string& destination,
                                   std::string mapping, int attempts, Millis next_attempt_at,
                                   Millis not_before, std::string route) {
  QueuedDelivery q;
  q.id = id;
  q.destination = destination;
  q.source = m->source;
  q.route = std::move(route);
  q.key = m->correlation;
  q.mapping = std::move(mapping);
  q.attempts = attempts;
  q.due = std::max(next_attempt_at, not_before);
  q.received_at = m->received_at;
  q.message_seq = m->seq;
  q.message = std::move(m);
  return q;
}

void seal_update(const AtRestCipher* cipher, DeliveryUpdate& u) {
  if (cipher == nullptr) return;
  if (u.payload && !cipher->seal(payload_aad(u.id), *u.payload, *u.payload)) {
    log_error("store",
              "cannot encrypt the payload of delivery " + std::to_string(u.id) + ": not kept");
    u.payload.reset();
  }
  if (u.attempt &&
      !cipher->seal(excerpt_aad(u.id, u.attempt->at), u.attempt->excerpt, u.attempt->excerpt)) {
    log_error("store",
              "cannot encrypt an excerpt of delivery " + std::to_string(u.id) + ": not kept");
    u.attempt->excerpt.clear();
  }
}

std::string open_stored(const AtRestCipher* cipher, const std::string& aad, std::string stored,
                        bool json, std::string* error) {
  if (!AtRestCipher::is_sealed(stored)) return stored;  // plain: no copy
  std::string plain;
  Status st = AtRestCipher::open_with(cipher, aad, stored, plain);
  if (st.ok) return plain;
  if (error != nullptr) *error = st.detail;
  return json ? unreadable_placeholder_json(st) : unreadable_placeholder_text(st);
}

Status run_rekey(const AtRestCipher* cipher, bool read_only, const RekeyRequest& request,
                 RekeyProgress& progress, const std::function<bool(const RekeyProgress&)>& on_batch,
                 const RekeySteps& steps) {
  progress = RekeyProgress{};
  if (cipher == nullptr) {
    progress.error = "no encryption configured (store.encryption)";
    return Status::failure(409, "encryption not configured",
                           "configure store.encryption (an active key) before a rekey");
  }
  if (read_only) return Status::failure(503, "store opened read-only");
  progress.active = cipher->active();
  progress.running = true;
  auto stop = [&](Status st) {
    progress.running = false;
    if (!st.ok) progress.error = st.detail.empty() ? st.error : st.detail;
    return st;
  };
  const int64_t batch = std::clamp<int64_t>(request.batch, 1, 100000);
  int64_t last[3] = {0, 0, 0};
  try {
    progress.to_do = steps.remaining();
    for (int t = 0; t < 3; ++t) last[t] = steps.last_key(t);
  } catch (const std::exception& e) {
    return stop(Status::failure(503, "storage error", e.what()));
  }
  for (int t = 0; t < 3; ++t) {
    for (int64_t from = 0; from < last[t]; from += batch) {
      RekeySteps::Batch b;
      if (!steps.batch(t, from, from + batch, b)) {
        return stop(Status::failure(503, "store closed"));
      }
      progress.done += b.done;
      progress.unreadable += b.unreadable;
      if (!b.status.ok) return stop(b.status);
      if (on_batch && !on_batch(progress)) return stop(Status::success());
    }
  }
  steps.after();
  try {
    progress.remaining = steps.remaining();
  } catch (const std::exception& e) {
    return stop(Status::failure(503, "storage error", e.what()));
  }
  progress.finished = true;
  Status st = stop(Status::success());
  if (on_batch) on_batch(progress);
  return st;
}

}  // namespace relais
