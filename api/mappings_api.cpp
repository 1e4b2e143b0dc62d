#include "api/mappings_api.h"

#include "api/http_util.h"
#include "core/json_reader.h"
#include "core/text_diff.h"

namespace relais {
namespace {

using json = nlohmann::json;
using api::read_json_object;
using api::send_error;
using api::send_json;

json diagnostics_json(const std::vector<mappings::Diagnostic>& diags) {
  json out = json::array();
  for (const auto& d : diags) {
    out.push_back(
        {{"file", d.file}, {"line", d.line}, {"column", d.column}, {"message", d.message}});
  }
  return out;
}

std::string diagnostics_text(const std::vector<mappings::Diagnostic>& diags) {
  std::string out;
  for (const auto& d : diags) {
    // Appended piece by piece: "\n" + std::string&& trips GCC 12's false -Wrestrict at -O3.
    if (!out.empty()) out += '\n';
    out += mappings::to_string(d);
  }
  return out;
}

json version_json(const DocumentVersion& v) {
  return {{"version", v.version}, {"author", v.author},
          {"comment", v.comment}, {"created_at", format_rfc3339(v.created_at)},
          {"active", v.active},   {"format", v.format}};
}

json result_json(const mappings::MapResult& r) {
  switch (r.kind) {
    case mappings::MapResult::Kind::Ok: {
      json out = {{"result", "ok"}, {"content_type", r.content_type}};
      if (r.value.is_null()) {
        out["output"] = r.text;
      } else {
        out["output"] = r.value;
      }
      return out;
    }
    case mappings::MapResult::Kind::Skip:
      return {{"result", "skip"}, {"reason", r.reason}};
    case mappings::MapResult::Kind::Error:
      return {{"result", "error"}, {"reason", r.reason}};
  }
  return json::object();
}

// Answers the storing of a new version: 201, or 422 with every diagnostic (nothing stored).
void answer_new_version(Poco::Net::HTTPServerResponse& resp, const std::string& name,
                        const MappingCheck& check, const char* refused, bool active) {
  if (!check.ok) {
    send_error(resp, 422, refused, diagnostics_text(check.diagnostics),
               {{"diagnostics", diagnostics_json(check.diagnostics)}});
    return;
  }
  send_json(resp, 201, {{"name", name}, {"version", check.version}, {"active", active}});
}

bool is_admin(const TokenConfig& t) {
  return t.role == "admin";
}
bool can_test(const TokenConfig& t) {
  return t.role == "admin" || t.role == "support";
}

}  // namespace

bool MappingsApi::handle(const std::vector<std::string>& seg, const Poco::URI& uri,
                         Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
  const std::string& method = req.getMethod();
  auto forbid = [&](const std::string& what) {
    send_error(resp, 403, "forbidden",
               what + " needs the " + (what == "testing" ? "admin or support" : "admin") + " role");
    return true;
  };
  auto wrong_method = [&](const char* allow) {
    resp.set("Allow", allow);
    send_error(resp, 405, "method not allowed", std::string("use ") + allow);
    return true;
  };
  auto& docs = repo.documents();

  if (seg[2] == "tables") {
    if (seg.size() == 3) {
      if (method != "GET") return wrong_method("GET");
      json items = json::array();
      for (const auto& d : docs.active("table")) {
        items.push_back({{"name", d.name}, {"version", d.version}, {"format", d.format}});
      }
      send_json(resp, 200, {{"items", items}});
      return true;
    }
    const std::string& name = seg[3];
    if (seg.size() == 4) {
      if (method != "GET") return wrong_method("GET");
      auto d = docs.get("table", name, 0);
      if (!d) {
        send_error(resp, 404, "not found", "no table '" + name + "'");
        return true;
      }
      json out = version_json(*d);
      out["name"] = name;
      out["content"] = d->content;
      json versions = json::array();
      for (const auto& v : docs.versions("table", name)) versions.push_back(version_json(v));
      out["versions"] = versions;
      send_json(resp, 200, out);
      return true;
    }
    if (seg.size() == 5 && seg[4] == "versions") {
      if (method != "POST") return wrong_method("POST");
      if (!is_admin(token)) return forbid("changing a table");
      json body;
      if (!read_json_object(req, resp, config.max_body, body)) return true;
      std::string format = body.value("format", "csv");
      if (!body.contains("content") || !body["content"].is_string() ||
          (format != "csv" && format != "yaml")) {
        send_error(resp, 400, "bad request",
                   "send {\"format\": \"csv\"|\"yaml\", \"content\": \"…\", \"comment\": \"…\"}");
        return true;
      }
      answer_new_version(resp, name,
                         repo.add_table_version(name, format, body["content"].get<std::string>(),
                                                token.name, body.value("comment", "")),
                         "refused", true);
      return true;
    }
    return false;
  }

  // /api/v1/mappings
  if (seg.size() == 3) {
    if (method != "GET") return wrong_method("GET");
    json items = json::array();
    for (const auto& [name, version] : repo.active_versions()) {
      items.push_back({{"name", name}, {"active_version", version}});
    }
    send_json(resp, 200, {{"items", items}});
    return true;
  }
  const std::string& name = seg[3];
  if (seg.size() == 4) {
    if (method != "GET") return wrong_method("GET");
    auto versions = docs.versions("mapping", name);
    if (versions.empty()) {
      send_error(resp, 404, "not found", "no mapping '" + name + "'");
      return true;
    }
    json out = {{"name", name}};
    json list = json::array();
    for (const auto& v : versions) {
      list.push_back(version_json(v));
      if (v.active) out["active_version"] = v.version;
    }
    if (auto active = docs.get("mapping", name, 0)) out["content"] = active->content;
    out["versions"] = list;
    json acts = json::array();
    for (const auto& a : docs.activations("mapping", name)) {
      acts.push_back({{"version", a.version},
                      {"by", a.by},
                      {"comment", a.comment},
                      {"at", format_rfc3339(a.at)}});
    }
    out["activations"] = acts;
    send_json(resp, 200, out);
    return true;
  }
  const std::string& op = seg[4];
  if (seg.size() == 6 && op == "versions") {
    if (method != "GET") return wrong_method("GET");
    int64_t v = 0;
    try {
      v = std::stoll(seg[5]);
    } catch (const std::exception&) {
      v = -1;
    }
    auto d = v > 0 ? docs.get("mapping", name, v) : std::nullopt;
    if (!d) {
      send_error(resp, 404, "not found", "mapping '" + name + "' has no version " + seg[5]);
      return true;
    }
    json out = version_json(*d);
    out["name"] = name;
    out["content"] = d->content;
    send_json(resp, 200, out);
    return true;
  }
  if (seg.size() != 5) return false;

  if (op == "versions") {
    if (method != "POST") return wrong_method("POST");
    if (!is_admin(token)) return forbid("publishing a mapping");
    json body;
    if (!read_json_object(req, resp, config.max_body, body)) return true;
    if (!body.contains("content") || !body["content"].is_string()) {
      send_error(resp, 400, "bad request",
                 "send {\"content\": \"<mapping YAML>\", \"comment\": \"…\", \"activate\": true}");
      return true;
    }
    bool activate = body.value("activate", false);
    answer_new_version(resp, name,
                       repo.add_version(name, body["content"].get<std::string>(), token.name,
                                        body.value("comment", ""), activate),
                       "mapping refused", activate);
    return true;
  }
  if (op == "validate") {
    if (method != "POST") return wrong_method("POST");
    if (!can_test(token)) return forbid("testing");
    json body;
    if (!read_json_object(req, resp, config.max_body, body)) return true;
    std::vector<mappings::Diagnostic> diags;
    auto compiled = repo.compile(name, body.value("content", ""), diags);
    send_json(resp, 200,
              {{"valid", compiled != nullptr}, {"diagnostics", diagnostics_json(diags)}});
    return true;
  }
  if (op == "activate") {
    if (method != "POST") return wrong_method("POST");
    if (!is_admin(token)) return forbid("publishing a mapping");
    json body;
    if (!read_json_object(req, resp, config.max_body, body)) return true;
    if (!body.contains("version") || !body["version"].is_number_integer()) {
      send_error(resp, 400, "bad request", "send {\"version\": N, \"comment\": \"…\"}");
      return true;
    }
    Status s =
        repo.activate(name, body["version"].get<int64_t>(), token.name, body.value("comment", ""));
    if (!s.ok) {
      send_error(resp, s.http_status, s.error, s.detail);
      return true;
    }
    send_json(resp, 200, {{"name", name}, {"active_version", body["version"]}});
    return true;
  }
  if (op == "diff") {
    if (method != "GET") return wrong_method("GET");
    int64_t from = 0, to = 0;
    for (const auto& [k, v] : uri.getQueryParameters()) {
      try {
        if (k == "from") from = std::stoll(v);
        if (k == "to") to = std::stoll(v);
      } catch (const std::exception&) {
      }
    }
    auto a = docs.get("mapping", name, from);
    auto b = docs.get("mapping", name, to);
    if (!a || !b || from <= 0 || to <= 0) {
      send_error(resp, 404, "not found", "give two existing versions: ?from=N&to=M");
      return true;
    }
    send_json(resp, 200,
              {{"name", name},
               {"from", from},
               {"to", to},
               {"diff", unified_diff(a->content, b->content, name + " v" + std::to_string(from),
                                     name + " v" + std::to_string(to))}});
    return true;
  }
  if (op == "test" || op == "replay-check") {
    if (method != "POST") return wrong_method("POST");
    if (!can_test(token)) return forbid("testing");
    json body;
    if (!read_json_object(req, resp, config.max_body, body)) return true;
    std::vector<mappings::Diagnostic> diags;
    std::shared_ptr<const mappings::CompiledMapping> compiled;
    int64_t version = 0;
    if (body.contains("content") && body["content"].is_string()) {
      compiled = repo.compile(name, body["content"].get<std::string>(), diags);
    } else {
      compiled = repo.compiled_version(name, body.value("version", int64_t{0}), &version, diags);
    }
    if (!compiled) {
      send_error(resp, 422, "mapping does not compile", diagnostics_text(diags),
                 {{"diagnostics", diagnostics_json(diags)}});
      return true;
    }
    if (op == "test") {
      json input, meta = {{"id", "test"},
                          {"source", "test"},
                          {"type", ""},
                          {"correlation_key", ""},
                          {"received_at", ""}};
      if (body.contains("message_id")) {
        auto rec = hub.store().message(body["message_id"].get<std::string>(), false);
        if (!rec) {
          send_error(resp, 404, "not found", "no stored message with that id");
          return true;
        }
        if (!rec->message->unreadable.empty()) {  // its key is not configured, or it was changed
          send_error(resp, 409, "payload cannot be decrypted", rec->message->unreadable);
          return true;
        }
        input = read_stored_json(rec->message->body, static_cast<size_t>(config.max_depth));
        meta = MappingRepository::meta_of(*rec->message);
        if (rc == nullptr) {
          send_error(resp, 403, "forbidden", "a dry run on a stored message needs a request");
          return true;
        }
        // A dry run reads a stored message: audited for every role, and its output masked for
        // every role but admin — a candidate such as `$` must not show the body in clear.
        bool candidate = body.contains("content");
        rc->audit("mapping.test", "mapping:" + name,
                  "message:" + rec->message->id + (candidate ? " (candidate)" : ""));
        api::PayloadMasker view(*rc, rec->message->source, input);
        json out = result_json(compiled->apply(input, meta));
        PersonalPaths own;
        std::string err;
        if (!PersonalPaths::parse(compiled->personal_paths(), own, err)) {
          PersonalPaths::parse({"$"}, own, err);
        }
        if (out.contains("output")) {
          out["output"] = view.derived(out["output"], name, 0, &own);
        }
        if (out.contains("reason")) out["reason"] = view.text(out["reason"].get<std::string>());
        out["masked"] = view.masked;
        if (version) out["version"] = version;
        send_json(resp, 200, out);
        return true;
      } else if (body.contains("input")) {
        input = body["input"];
        // The type as the hub would compute it: the first source whose type expression gives
        // one (a "meta" object in the request overrides it).
        for (const auto& [sname, source] : config.sources) {
          std::string type, err;
          if (source.type.render(input, type, err) && !type.empty()) {
            meta["type"] = type;
            meta["source"] = sname;
            break;
          }
        }
        if (body.contains("meta") && body["meta"].is_object()) {
          for (auto it = body["meta"].begin(); it != body["meta"].end(); ++it) {
            meta[it.key()] = it.value();
          }
        }
      } else {
        send_error(resp, 400, "bad request",
                   "send {\"input\": {…}} or {\"message_id\": \"…\"}, with \"version\" or "
                   "\"content\" to test a candidate");
        return true;
      }
      json out = result_json(compiled->apply(input, meta));
      if (version) out["version"] = version;
      send_json(resp, 200, out);
      return true;
    }
    // replay-check: the candidate over the last N dead deliveries of a destination (stored
    // messages are read: audited; reasons cleaned of personal values unless admin).
    if (rc != nullptr) rc->audit("mapping.replay_check", "mapping:" + name);
    std::string destination = body.value("destination", "");
    int limit = std::clamp(body.value("limit", 100), 1, 500);
    MessageFilter f;
    f.state = "dead";
    f.destination = destination;
    f.limit = limit;
    auto page = hub.store().list(f);
    int checked = 0, ok = 0, skipped = 0, failing = 0;
    json failures = json::array();
    for (const auto& rec : page.items) {
      for (const auto& d : rec.deliveries) {
        if (d.state != DeliveryState::Dead || d.mapping != name ||
            (!destination.empty() && d.destination != destination)) {
          continue;
        }
        ++checked;
        if (!rec.message->unreadable.empty()) {  // not decryptable: no mapping can fix it
          ++failing;
          if (failures.size() < 20) {
            failures.push_back(
                {{"delivery_id", std::to_string(d.id)}, {"reason", rec.message->unreadable}});
          }
          continue;
        }
        json input = read_stored_json(rec.message->body, static_cast<size_t>(config.max_depth));
        auto r = compiled->apply(input, MappingRepository::meta_of(*rec.message));
        if (r.kind == mappings::MapResult::Kind::Error && rc != nullptr) {
          r.reason = api::PayloadMasker(*rc, rec.message->source, input).text(r.reason);
        }
        if (r.kind == mappings::MapResult::Kind::Ok) {
          ++ok;
        } else if (r.kind == mappings::MapResult::Kind::Skip) {
          ++skipped;
        } else {
          ++failing;
          if (failures.size() < 20) {
            failures.push_back({{"delivery_id", std::to_string(d.id)}, {"reason", r.reason}});
          }
        }
      }
    }
    send_json(resp, 200,
              {{"checked", checked},
               {"would_succeed", ok},
               {"would_skip", skipped},
               {"still_failing", failing},
               {"failures", failures}});
    return true;
  }
  return false;
}

}  // namespace relais
