// Reconciliation of a calendar destination: what Relais believes (cross-references and the
// last delivered state of each key) against the events carrying the key property.

#include <map>
#include <set>

#include "connectors/calendar/calendar.h"

namespace relais::calendar {
namespace {

// The last delivered state of one key at the destination.
struct Belief {
  std::string mailbox;
  nlohmann::json mapped;  // the mapping's output last delivered
  bool has_event = false;
  std::string start_utc;
};

std::string utc_or_same(const std::string& t) {
  std::string out;
  return to_utc(t, out) ? out : t;
}

nlohmann::json repair_body(const Belief& b, const std::string& mailbox) {
  nlohmann::json j = b.mapped.is_object() ? b.mapped : nlohmann::json::object();
  j["action"] = "repair";
  j["mailbox"] = b.mailbox.empty() ? mailbox : b.mailbox;
  if (!b.has_event) j.erase("event");
  return j;
}

}  // namespace

ReconcileReport reconcile(Driver& driver, XrefStore& xrefs, Store& store,
                          const std::string& destination, const std::string& from_utc,
                          const std::string& to_utc) {
  ReconcileReport rep;
  // The last delivered state per key: messages newest first, first delivered payload wins.
  std::map<std::string, Belief> beliefs;
  MessageFilter f;
  f.destination = destination;
  f.state = "delivered";
  f.limit = 500;
  for (;;) {
    MessagePage page = store.list(f);
    for (const auto& rec : page.items) {
      const std::string& key = rec.message->correlation;
      if (key.empty() || beliefs.count(key) > 0) continue;
      for (const auto& d : rec.deliveries) {
        if (d.destination != destination || d.state != DeliveryState::Delivered) continue;
        std::string text = d.payload ? *d.payload : rec.message->body;
        nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
        if (!j.is_object() || !j.contains("mailbox")) continue;
        Belief b;
        b.mailbox = j.value("mailbox", std::string());
        b.mapped = j;
        std::string action = j.value("action", std::string());
        b.has_event = j.contains("event") && j["event"].is_object() && action != "delete";
        if (b.has_event) b.start_utc = utc_or_same(j["event"].value("start", std::string()));
        beliefs[key] = b;
        break;
      }
    }
    if (page.next_cursor == 0) break;
    f.before_seq = page.next_cursor;
  }
  rep.keys_known = beliefs.size();
  std::set<std::string> mailboxes;
  for (const auto& [k, b] : beliefs) mailboxes.insert(b.mailbox);

  std::set<std::string> seen_keys;
  for (const auto& mb : mailboxes) {
    Result r = driver.find(mb, "", from_utc, to_utc, 0);
    if (r.kind != Result::Kind::Ok) {
      rep.errors.push_back(mb + ": " + r.failure.text);
      continue;
    }
    rep.remote_events += r.found.size();
    std::map<std::string, std::vector<RemoteEvent>> by_key;
    for (const auto& ev : r.found) by_key[ev.key].push_back(ev);
    for (const auto& [key, evs] : by_key) {
      seen_keys.insert(key);
      auto bit = beliefs.find(key);
      std::optional<CrossReference> x = xrefs.get(destination, key);
      if (x && x->external_id == "-") x.reset();  // a tombstone: Relais deleted the event
      std::string ids;
      for (const auto& e : evs) ids += (ids.empty() ? "" : ", ") + e.ref.id;
      if (bit == beliefs.end() || !bit->second.has_event) {
        Belief none;
        none.mailbox = mb;
        rep.findings.push_back({"leftover", mb, key,
                                std::to_string(evs.size()) + " event(s) [" + ids +
                                    "] for an appointment Relais cancelled or never delivered",
                                repair_body(bit == beliefs.end() ? none : bit->second, mb)});
        continue;
      }
      const Belief& b = bit->second;
      if (evs.size() > 1) {
        rep.findings.push_back({"duplicate", mb, key,
                                std::to_string(evs.size()) + " events [" + ids + "]",
                                repair_body(b, mb)});
        continue;
      }
      const RemoteEvent& e = evs.front();
      if (utc_or_same(e.start) != b.start_utc) {
        rep.findings.push_back(
            {"stale", mb, key, "starts " + utc_or_same(e.start) + ", last delivered " + b.start_utc,
             repair_body(b, mb)});
      } else if (!x || x->external_id != e.ref.id) {
        rep.findings.push_back({"stale", mb, key,
                                "the cross-reference names " +
                                    (x ? x->external_id : std::string("nothing")) +
                                    ", the calendar holds " + e.ref.id,
                                repair_body(b, mb)});
      }
    }
  }
  for (const auto& [key, b] : beliefs) {
    if (!b.has_event || seen_keys.count(key) > 0) continue;
    if (b.start_utc < from_utc || b.start_utc >= to_utc) continue;
    bool unreadable = false;
    for (const auto& e : rep.errors) unreadable = unreadable || e.rfind(b.mailbox + ":", 0) == 0;
    if (unreadable) continue;
    rep.findings.push_back({"missing", b.mailbox, key,
                            "no event, last delivered start " + b.start_utc,
                            repair_body(b, b.mailbox)});
  }
  return rep;
}

}  // namespace relais::calendar
