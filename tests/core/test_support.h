// Helpers shared by the core unit tests: temporary directories, waiting for a condition, and
// building messages to accept.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/at_rest.h"
#include "core/ids.h"
#include "core/store.h"
#include "core/xref_store.h"

namespace relais::testing {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
// Not thread-safe; owned by one test.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "relais-core-XXXXXX").string();
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `pred` every millisecond until it holds or `timeout_ms` passed; returns its last value.
template <class Pred>
bool wait_until(Pred pred, int timeout_ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Two test keys of encryption at rest (core/at_rest.h), "A" and "B".
inline const char* kKeyA = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
inline const char* kKeyB = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

inline AtRestCipher::Key key_from_hex(const std::string& id, const std::string& hex) {
  AtRestCipher::Key k;
  k.id = id;
  for (size_t i = 0; i < 32; ++i) {
    k.bytes[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  }
  return k;
}

// A cipher with the keys `ids` ("A", "B") and `active` among them.
inline std::shared_ptr<const AtRestCipher> cipher(const std::vector<std::string>& ids,
                                                  const std::string& active) {
  std::vector<AtRestCipher::Key> keys;
  for (const auto& id : ids) keys.push_back(key_from_hex(id, id == "A" ? kKeyA : kKeyB));
  return std::make_shared<const AtRestCipher>(std::move(keys), active);
}

// Builds one message with the given fields and a delivery per destination.
inline Incoming make_incoming(IdGenerator& ids, const std::string& source, const std::string& type,
                              const std::string& correlation, const std::string& idempotency,
                              Millis received_at, const std::vector<NewDelivery>& deliveries,
                              const std::string& body = "{\"x\":1}") {
  auto m = std::make_shared<Message>();
  m->id = ids.next();
  m->source = source;
  m->type = type;
  m->correlation = correlation;
  m->idempotency = idempotency;
  m->body = body;
  m->received_at = received_at;
  Incoming in;
  in.message = std::move(m);
  in.deliveries = deliveries;
  return in;
}

inline NewDelivery to_dest(const std::string& destination, Millis not_before = 0,
                           const std::string& route = "r1", const std::string& mapping = "") {
  NewDelivery d;
  d.destination = destination;
  d.route = route;
  d.mapping = mapping;
  d.not_before = not_before;
  return d;
}

// A message of `person` with one delivery to "sms", its mapped payload and the partner's answer
// echoing the person (recorded, not waited for: flush() before reading). Its id.
inline std::string add_personal(IdGenerator& ids, Store& store, Millis at,
                                const std::string& person,
                                const std::string& correlation = "individu:1") {
  std::vector<Incoming> batch;
  batch.push_back(make_incoming(ids, "cms", "rdv", correlation, "", at, {to_dest("sms")},
                                "{\"nom\":\"" + person + "\"}"));
  auto r = store.accept(std::move(batch));
  EXPECT_EQ(r.at(0).kind, AcceptResult::Kind::Created) << r.at(0).error;
  DeliveryUpdate u;
  u.id = store.message(r.at(0).id, false)->deliveries.at(0).id;
  u.state = DeliveryState::Dead;
  u.attempts = 1;
  u.now = at + 1;
  u.payload = "{\"to\":\"" + person + "\"}";
  u.attempt = Attempt{at + 1, 5, "reject", "http", 400, "refused", "echo: " + person};
  store.record(std::move(u));
  return r.at(0).id;
}

// The message `id` added by add_personal reads back clear: body, payload, excerpt.
inline void expect_clear(Store& store, const std::string& id, const std::string& person) {
  auto rec = store.message(id, true);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->message->body, "{\"nom\":\"" + person + "\"}");
  EXPECT_TRUE(rec->message->unreadable.empty()) << rec->message->unreadable;
  ASSERT_EQ(rec->deliveries.size(), 1u);
  EXPECT_EQ(rec->deliveries[0].payload.value_or(""), "{\"to\":\"" + person + "\"}");
  ASSERT_EQ(rec->deliveries[0].history.size(), 1u);
  EXPECT_EQ(rec->deliveries[0].history[0].excerpt, "echo: " + person);
  auto d = store.delivery(rec->deliveries[0].id);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->payload.value_or(""), "{\"to\":\"" + person + "\"}");
}

// A cross-reference (core/xref_store.h) to put; the keys of a list of them, in order.
inline CrossReference xref(const std::string& destination, const std::string& key,
                           const std::string& external_id, const std::string& version,
                           const std::string& message_id = "01MSG") {
  CrossReference r;
  r.destination = destination;
  r.key = key;
  r.external_id = external_id;
  r.version = version;
  r.message_id = message_id;
  return r;
}

inline std::vector<std::string> keys_of(const std::vector<CrossReference>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs) out.push_back(r.key);
  return out;
}

}  // namespace relais::testing
