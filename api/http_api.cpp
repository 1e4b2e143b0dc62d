#include "api/http_api.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/URI.h>

#include <algorithm>
#include <functional>
#include <istream>
#include <optional>
#include <sstream>

#include "api/api_context.h"
#include "api/console_assets.h"
#include "api/http_server.h"
#include "api/http_util.h"
#include "api/mappings_api.h"
#include "api/node_reports.h"
#include "connectors/calendar/calendar.h"
#include "core/crypto.h"
#include "core/files.h"
#include "core/log.h"
#include "core/signature.h"

namespace relais {
namespace {

using Poco::Net::HTTPRequestHandler;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;
using json = nlohmann::json;
using api::lower;
using api::read_body;
using api::send_error;
using api::send_json;
using api::split_path;
using api::stored_view;

// `view` masks for the request's role; null only where no payload nor text is shown (admin).
json delivery_json(const Delivery& d, const Dispatcher& dispatcher, bool with_history,
                   api::PayloadMasker* view, size_t max_depth) {
  auto text = [&](const std::string& t) { return view ? view->text(t) : t; };
  std::string state = to_string(d.state);
  if (is_active(d.state) && dispatcher.in_flight(d.id)) state = "in_flight";
  json j = {{"id", std::to_string(d.id)},
            {"destination", d.destination},
            {"route", d.route},
            {"state", state},
            {"attempt_count", d.attempts},
            {"updated_at", format_rfc3339(d.updated_at)}};
  if (!d.mapping.empty()) {
    j["mapping"] = d.mapping;
    j["mapping_version"] = d.mapping_version;
  }
  if (d.next_attempt_at && d.state == DeliveryState::Retrying) {
    j["next_attempt_at"] = format_rfc3339(d.next_attempt_at);
  }
  if (d.next_attempt_at && d.state == DeliveryState::Pending) {
    j["scheduled_at"] = format_rfc3339(d.next_attempt_at);  // deferred by its connector
  }
  if (d.not_before) j["not_before"] = format_rfc3339(d.not_before);
  if (!d.last_outcome.empty() || !d.last_text.empty()) {
    j["last_outcome"] = {{"outcome", d.last_outcome},
                         {"class", d.last_class},
                         {"code", d.last_code},
                         {"text", text(d.last_text)}};
  }
  if (!d.external_ref.empty()) j["external_ref"] = d.external_ref;
  if (!d.flags.empty()) j["flags"] = d.flags;
  if (with_history) {
    json attempts = json::array();
    for (const auto& a : d.history) {
      json aj = {{"at", format_rfc3339(a.at)},
                 {"duration_ms", a.duration_ms},
                 {"outcome", a.outcome},
                 {"class", a.error_class},
                 {"code", a.code},
                 {"text", text(a.text)}};
      if (!a.excerpt.empty()) aj["response_excerpt"] = view ? view->excerpt(a.excerpt) : a.excerpt;
      attempts.push_back(std::move(aj));
    }
    j["attempts"] = std::move(attempts);
    if (d.payload && view) {
      j["payload"] =
          view->derived(stored_view(*d.payload, max_depth), d.mapping, d.mapping_version);
    }
  }
  return j;
}

json message_json(const MessageRecord& rec, const Dispatcher& dispatcher, bool full,
                  api::PayloadMasker* view, size_t max_depth) {
  const Message& m = *rec.message;
  json j = {{"id", m.id},
            {"source", m.source},
            {"type", m.type},
            {"correlation_key", m.correlation},
            {"received_at", format_rfc3339(m.received_at)}};
  if (!m.idempotency.empty()) j["idempotency_key"] = m.idempotency;
  if (full) {
    j["headers"] = m.headers;
    if (view) j["body"] = view->body();
  }
  json deliveries = json::array();
  for (const auto& d : rec.deliveries)
    deliveries.push_back(delivery_json(d, dispatcher, full, view, max_depth));
  if (rec.deliveries.empty()) j["state"] = "unrouted";
  j["deliveries"] = std::move(deliveries);
  return j;
}

// Answers every request: the console's assets, authentication (bearer token or session cookie),
// the endpoint table (role checked before any handler), CSRF for sessions, errors as JSON.
// One instance per request, on a handler thread of the HttpServer; shares ApiShared, which is
// thread-safe.
class ApiHandler final : public HTTPRequestHandler {
 public:
  explicit ApiHandler(api::ApiShared& shared)
      : shared_(shared), hub_(shared.hub), config_(shared.config) {}

  void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
    try {
      api::refuse_keep_alive_until_read(req, resp);
      Poco::URI uri;
      if (!api::parse_target(req.getURI(), uri, resp)) return;
      route(req, resp, uri);
    } catch (const nlohmann::json::type_error& e) {
      // A JSON body with a field of the wrong type (e.g. {"user": 1}).
      if (!resp.sent())
        send_error(resp, 400, "bad request", std::string("wrong type: ") + e.what());
    } catch (const std::exception& e) {
      // Boundary: nothing escapes to Poco (which would answer an empty 500). The log names the
      // request by its path only (no query values, no body).
      last_resort(req, resp, api::exception_for_log(e));
    } catch (...) {
      last_resort(req, resp, "an exception of unknown type");
    }
  }

 private:
  static void last_resort(HTTPServerRequest& req, HTTPServerResponse& resp,
                          const std::string& what) {
    log_error("api", "internal error on " + req.getMethod() + " " +
                         api::path_for_log(req.getURI()) + ": " + what);
    if (resp.sent()) return;
    resp.setKeepAlive(false);
    send_error(resp, 500, "internal error",
               "the request stopped on an unexpected error (" + what + "); see the relais log");
  }

  // A configuration token bound to a client certificate (auth.tokens[].client_certificate)
  // presented without that certificate: which token, and why (for the 401 and the audit).
  struct BindingRefusal {
    const TokenConfig* token = nullptr;
    std::string detail;
    Status sessions = Status::success();  // !ok: the sessions could not be read (503)
  };

  // The caller, or nothing. A bound token counts only on a connection whose verified client
  // certificate (the TLS handshake, api::peer_certificate) has its fingerprint; else nothing,
  // and `refusal` names the token.
  std::optional<api::Principal> authenticate(HTTPServerRequest& req, BindingRefusal& refusal) {
    if (req.has("Authorization")) {
      const std::string& auth = req.get("Authorization");
      if (auth.size() < 8 || lower(auth.substr(0, 7)) != "bearer ") return std::nullopt;
      std::string digest = sha256_hex(auth.substr(7));
      const TokenConfig* found = nullptr;
      for (const auto& t : config_.tokens) {
        // Compare every token's hash in constant time; do not stop early.
        if (constant_time_equals(digest, t.sha256)) found = &t;
      }
      if (found != nullptr && !found->client_certificate.empty()) {
        const api::PeerCertificate* cert = api::peer_certificate(req);
        if (cert == nullptr || !constant_time_equals(cert->sha256, found->client_certificate)) {
          refusal.token = found;
          refusal.detail = cert == nullptr
                               ? "this token is bound to a client certificate; the connection "
                                 "presented none (mutual TLS)"
                               : "this token is bound to another client certificate than the "
                                 "one the connection presented";
          return std::nullopt;
        }
      }
      if (found != nullptr) {
        api::Principal p{found->name, found->role, found->sources};
        p.free_busy_mailboxes = &found->free_busy_mailboxes;
        return p;
      }
      if (shared_.console != nullptr) {
        if (auto t = shared_.console->token_by_sha256(digest)) {
          return api::Principal{t->name, t->role, t->sources};
        }
      }
      return std::nullopt;
    }
    std::string sid = api::session_cookie(req);
    if (sid.empty()) return std::nullopt;
    std::optional<api::Principal> who;
    refusal.sessions = shared_.sessions.find(sid, who);
    return who;
  }

  // 401 for a bound token without its certificate, audited (auth.refused) as the token.
  void refuse_binding(HTTPServerRequest& req, HTTPServerResponse& resp,
                      const BindingRefusal& refused) {
    if (shared_.console != nullptr) {
      shared_.console->audit(AuditEntry{0, 0, refused.token->name, refused.token->role,
                                        "auth.refused", "token:" + refused.token->name,
                                        refused.detail, client_address(req)});
    }
    resp.set("WWW-Authenticate", "Bearer realm=\"relais\"");
    send_error(resp, 401, "unauthorized", refused.detail);
  }

  // A session cookie that could not be checked (the shared sessions are unreachable): 503 with
  // Retry-After, never let in unchecked, never logged out either.
  static void sessions_unavailable(HTTPServerResponse& resp, const Status& why) {
    resp.set("Retry-After", "5");
    send_error(resp, 503, why.error, why.detail);
  }

  // server.rate_limit: true when `who` is over its limit, answered 429 with Retry-After (whole
  // seconds, at least 1) and counted in relais_http_rate_limited_total{token} (the name only).
  bool over_rate_limit(const api::Principal& who, HTTPServerResponse& resp) {
    if (!shared_.rate_limited) return false;
    const std::string caller = api::rate_caller(who);
    Micros wait = shared_.rates.take(caller);
    if (wait == 0) return false;
    hub_.metrics().counter("relais_http_rate_limited_total", {{"token", caller}}).inc();
    RateLimit limit = shared_.rates.limit(caller);
    int64_t retry_after = std::max<int64_t>(1, (wait + 999'999) / 1'000'000);
    resp.set("Retry-After", std::to_string(retry_after));
    std::ostringstream rate;
    rate << limit.per_second;
    send_error(resp, 429, "rate limited",
               "'" + caller + "' sent more than " + rate.str() + " requests per second (burst " +
                   std::to_string(limit.burst) + "); send again after " +
                   std::to_string(retry_after) + " s",
               {{"limit", "server.rate_limit"},
                {"token", caller},
                {"per_second", limit.per_second},
                {"burst", limit.burst},
                {"retry_after_s", retry_after}});
    return true;
  }

  // The real client: the TCP peer, or behind a trusted proxy the rightmost untrusted address
  // of X-Forwarded-For (api/proxy.h). Several X-Forwarded-For headers read as one list.
  std::string client_address(HTTPServerRequest& req) const {
    std::string peer = req.clientAddress().host().toString();
    if (shared_.proxies.empty()) return peer;
    std::string xff;
    for (auto it = req.find("X-Forwarded-For");
         it != req.end() && lower(it->first) == "x-forwarded-for"; ++it) {
      xff += (xff.empty() ? "" : ",") + it->second;
    }
    return shared_.proxies.client(peer, xff);
  }

  void route(HTTPServerRequest& req, HTTPServerResponse& resp, const Poco::URI& uri) {
    const std::string path = uri.getPath();
    const std::string& method = req.getMethod();
    if (path == "/console" || path.rfind("/console/", 0) == 0 || path == "/") {
      if (method != "GET" && method != "HEAD") return method_not_allowed(resp, "GET");
      return api::serve_console_asset(path, req, resp);
    }
    auto seg = split_path(path);
    std::map<std::string, std::string> params;
    bool path_matched = false;
    std::string allow;
    const api::Endpoint* ep = api::match_endpoint(method, seg, params, path_matched, allow);
    if (ep == nullptr) {
      if (path_matched) return method_not_allowed(resp, allow);
      return send_error(resp, 404, "not found", "no endpoint at " + path);
    }
    if (ep->is_public()) {
      switch (ep->id) {
        case api::Ep::Healthz:
          return send_json(resp, 200, {{"status", "ok"}});
        case api::Ep::OpenApi:
          return api::serve_openapi(resp);
        case api::Ep::SessionLogin:
          return api::handle_login(shared_, req, resp, client_address(req));
        case api::Ep::ConnectorInbound:
        case api::Ep::ConnectorInboundPost: {
          BindingRefusal refused;
          std::optional<api::Principal> who = authenticate(req, refused);
          if (refused.token != nullptr) return refuse_binding(req, resp, refused);
          if (!refused.sessions.ok) return sessions_unavailable(resp, refused.sessions);
          if (who && over_rate_limit(*who, resp)) return;
          return connector_request(req, resp, uri, seg, who ? &*who : nullptr);
        }
        default:
          return send_error(resp, 404, "not found", "no endpoint at " + path);
      }
    }
    BindingRefusal refused;
    std::optional<api::Principal> who = authenticate(req, refused);
    if (refused.token != nullptr) return refuse_binding(req, resp, refused);
    if (!refused.sessions.ok) return sessions_unavailable(resp, refused.sessions);
    if (!who) {
      resp.set("WWW-Authenticate", "Bearer realm=\"relais\"");
      return send_error(resp, 401, "unauthorized",
                        "a valid bearer token or a console session is required");
    }
    if (over_rate_limit(*who, resp)) return;
    if (!ep->allows(who->role)) {
      std::string roles;
      for (const auto& r : ep->roles) roles += (roles.empty() ? "" : ", ") + r;
      return send_error(resp, 403, "forbidden",
                        "the role '" + who->role + "' may not do this (allowed: " + roles + ")");
    }
    // A session rides on an ambient cookie: every state-changing request must also carry the
    // session's CSRF token in a header, which another site cannot read.
    if (who->session && method != "GET" && method != "HEAD") {
      std::string sent = req.get("X-CSRF-Token", "");
      if (!constant_time_equals(sent, who->csrf)) {
        return send_error(resp, 403, "csrf",
                          "send the session's CSRF token in the X-CSRF-Token header");
      }
    }
    api::RequestContext rc{shared_, *ep, *who, params, uri, req, resp, client_address(req)};
    switch (ep->id) {
      case api::Ep::Readyz: {
        bool ok = hub_.ready();
        nlohmann::json body{{"status", ok ? "ready" : "not ready"}};
        // Several nodes: what this node sends, or why it sends nothing (Redis, the feed).
        if (hub_.clustered()) {
          body["cluster"] = hub_.cluster_status();
          body["partitions"] = hub_.owned_partitions();
        }
        return send_json(resp, ok ? 200 : 503, body);
      }
      case api::Ep::Metrics: {
        std::string text = hub_.metrics().render();
        resp.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
        resp.setContentType("text/plain; version=0.0.4");
        resp.setContentLength(static_cast<std::streamsize>(text.size()));
        resp.send() << text;
        return;
      }
      case api::Ep::Inbound:
      case api::Ep::InboundBatch: {
        const std::string& source = params["source"];
        if (!who->sources.empty() &&
            std::find(who->sources.begin(), who->sources.end(), source) == who->sources.end()) {
          return send_error(resp, 403, "forbidden",
                            "this token may not post to source '" + source + "'");
        }
        return inbound(req, resp, source, ep->id == api::Ep::InboundBatch);
      }
      case api::Ep::MessagesList:
        return list_messages(rc);
      case api::Ep::MessageGet: {
        auto rec = hub_.store().message(params["id"], true);
        if (!rec) return send_error(resp, 404, "not found", "no message " + params["id"]);
        api::PayloadMasker view(rc, rec->message->source,
                                stored_view(rec->message->body, max_depth()));
        json out = message_json(*rec, hub_.dispatcher(), true, &view, max_depth());
        // An erased or purged message: its payloads are the tombstone, shown as such.
        if (json t = erased_view(rec->message->body); !t.is_null()) out["erased"] = t;
        // A body that does not decrypt (docs/security.md, "Encryption at rest"): why.
        if (!rec->message->unreadable.empty()) out["unreadable"] = rec->message->unreadable;
        if (view.personal) rc.audit("payload.view", "message:" + params["id"]);
        out["masked"] = view.masked;
        return send_json(resp, 200, out);
      }
      case api::Ep::DeliveryRetry:
      case api::Ep::DeliveryDiscard:
        return delivery_action(rc, params["id"],
                               ep->id == api::Ep::DeliveryRetry ? "retry" : "discard");
      case api::Ep::ConnectorRecord:
      case api::Ep::OptoutsList:
      case api::Ep::OptoutAdd:
      case api::Ep::OptoutRemoveByNumber:
      case api::Ep::OptoutGet:
      case api::Ep::OptoutRemove:
        connector_request(req, resp, uri, seg, &*who);
        if (ep->id == api::Ep::OptoutAdd || ep->id == api::Ep::OptoutRemoveByNumber ||
            ep->id == api::Ep::OptoutRemove) {
          audit_if_done(rc, ep->id == api::Ep::OptoutAdd ? "optout.add" : "optout.remove",
                        "destination:" + params["destination"]);
        }
        return;
      case api::Ep::FreeBusy:
        return free_busy(rc, uri, resp, params["name"]);
      case api::Ep::DestinationMessage:
        direct_message(req, resp, params["name"]);
        return audit_if_done(rc, "destination.message", "destination:" + params["name"]);
      default:
        break;
    }
    if (api::handle_console_endpoint(ep->id, rc)) return;
    if (api::handle_pairing_endpoint(ep->id, rc)) return;
    if (api::handle_booking_endpoint(ep->id, rc)) return;
    if (shared_.mappings != nullptr && (seg[2] == "mappings" || seg[2] == "tables")) {
      return mappings_endpoint(rc, seg);
    }
    send_error(resp, 404, "not found", "no endpoint at " + path);
  }

  // A connector's own endpoints (/api/v1/connectors/{destination}/…): partners' callbacks
  // under inbound/ (the connector checks its own secret; `who` may be null) and records or
  // lists (the table checked the role; the connector checks it again).
  void connector_request(HTTPServerRequest& req, HTTPServerResponse& resp, const Poco::URI& uri,
                         const std::vector<std::string>& seg, const api::Principal* who) {
    Connector* c = hub_.connector(seg[3]);
    if (c == nullptr) {
      return send_error(resp, 404, "not found", "no destination named '" + seg[3] + "'");
    }
    InboundRequest in;
    in.method = req.getMethod();
    for (size_t i = 4; i < seg.size(); ++i) in.path += (i > 4 ? "/" : "") + seg[i];
    for (const auto& [k, v] : uri.getQueryParameters()) in.query[k] = v;
    in.content_type = lower(req.getContentType());
    in.authorization = req.get("Authorization", "");
    if (!read_body(req, config_.max_body, in.body, &resp)) {
      resp.setKeepAlive(false);
      return send_error(resp, 413, "payload too large", "the body exceeds the limit");
    }
    if (in.content_type.rfind("application/x-www-form-urlencoded", 0) == 0) {
      Poco::URI form;
      if (!api::parse_target("/?" + in.body, form, resp)) return;  // 400: names the escape
      for (const auto& [k, v] : form.getQueryParameters()) in.query.emplace(k, v);
    }
    if (who != nullptr) {
      in.role = who->role;
      in.actor = who->name;
    }
    auto out = c->inbound(in);
    if (!out) return send_error(resp, 404, "not found", "no endpoint at " + uri.getPath());
    send_json(resp, out->status, out->body);
  }

  // Audits what a handler did, once it has answered with success (a refused request changed
  // nothing).
  static void audit_if_done(api::RequestContext& rc, const std::string& action,
                            const std::string& object) {
    if (static_cast<int>(rc.resp.getStatus()) < 300) rc.audit(action, object);
  }

  // The mapping endpoints (mappings_api.cpp), audited when they change something.
  void mappings_endpoint(api::RequestContext& rc, const std::vector<std::string>& seg) {
    TokenConfig as{rc.who.name, "", rc.who.role, rc.who.sources};
    const std::string name = rc.params.count("name") ? rc.params.at("name") : "";
    int64_t before = 0;
    if (rc.endpoint.id == api::Ep::MappingActivate) {
      for (const auto& [n, v] : shared_.mappings->active_versions()) {
        if (n == name) before = v;
      }
    }
    MappingsApi m{hub_, config_, *shared_.mappings, as, &rc};
    if (!m.handle(seg, rc.uri, rc.req, rc.resp)) {
      return send_error(rc.resp, 404, "not found", "no endpoint at " + rc.uri.getPath());
    }
    if (static_cast<int>(rc.resp.getStatus()) >= 300) return;
    switch (rc.endpoint.id) {
      case api::Ep::MappingVersionAdd:
        rc.audit("mapping.version", "mapping:" + name, "new version stored");
        break;
      case api::Ep::MappingActivate: {
        int64_t after = 0;
        for (const auto& [n, v] : shared_.mappings->active_versions()) {
          if (n == name) after = v;
        }
        rc.audit(after < before ? "mapping.rollback" : "mapping.publish", "mapping:" + name,
                 "version " + std::to_string(before) + " → " + std::to_string(after));
        break;
      }
      case api::Ep::TableVersionAdd:
        rc.audit("table.version", "table:" + name, "new version stored and activated");
        break;
      default:
        break;
    }
  }

  void method_not_allowed(HTTPServerResponse& resp, const std::string& allow) {
    resp.set("Allow", allow);
    send_error(resp, 405, "method not allowed", "use " + allow);
  }

  void inbound(HTTPServerRequest& req, HTTPServerResponse& resp, const std::string& source,
               bool batch) {
    if (!hub_.has_source(source)) {
      return send_error(resp, 404, "unknown source",
                        "no source named '" + source + "' is configured");
    }
    std::string ctype = lower(req.getContentType());
    ctype = ctype.substr(0, ctype.find(';'));
    while (!ctype.empty() && ctype.back() == ' ') ctype.pop_back();
    bool ok_type = batch ? (ctype == "application/x-ndjson" || ctype == "application/ndjson" ||
                            ctype == "application/jsonl" || ctype == "application/json-seq" ||
                            ctype == "application/x-jsonlines")
                         : (ctype == "application/json");
    if (!ok_type) {
      return send_error(
          resp, 415, "unsupported media type",
          std::string("send ") +
              (batch ? "application/x-ndjson (one JSON object per line)" : "application/json") +
              ", not '" + req.getContentType() + "'");
    }
    int64_t limit = batch ? config_.max_body * 64 : config_.max_body;
    if (req.hasContentLength() && req.getContentLength64() > limit) {
      resp.setKeepAlive(false);
      return send_error(resp, 413, "payload too large",
                        "the body is " + std::to_string(req.getContentLength64()) +
                            " bytes; the limit is " + std::to_string(limit));
    }
    std::string body;
    if (!read_body(req, limit, body, &resp)) {
      resp.setKeepAlive(false);
      return send_error(resp, 413, "payload too large",
                        "the body exceeds the limit of " + std::to_string(limit) + " bytes");
    }
    std::map<std::string, std::string> headers;
    for (const auto& [k, v] : req) headers[lower(k)] = v;
    if (!signature_ok(source, headers, body, resp)) return;
    if (batch) {
      int64_t lines = std::count(body.begin(), body.end(), '\n') + 1;
      if (lines > config_.max_batch_lines + 1) {
        return send_error(
            resp, 413, "batch too large",
            "at most " + std::to_string(config_.max_batch_lines) + " lines per batch; split it");
      }
      auto results = hub_.accept_batch(source, body, headers);
      // The lines to store are committed together: when the commit failed, none is stored,
      // and the whole batch is answered 503 (send it again after Retry-After).
      auto failed_commit = std::find_if(results.begin(), results.end(),
                                        [](const AcceptResponse& r) { return r.status == 503; });
      if (failed_commit != results.end()) {
        resp.set("Retry-After", std::to_string(failed_commit->retry_after_s));
        return send_error(resp, 503, "not stored",
                          "no line of this batch was stored: " + failed_commit->detail);
      }
      json items = json::array();
      size_t accepted = 0, duplicates = 0, failed = 0;
      for (const auto& r : results) {
        json item = {{"status", r.status}};
        for (auto it = r.extra.begin(); it != r.extra.end(); ++it) item[it.key()] = it.value();
        if (!r.id.empty()) item["id"] = r.id;
        if (!r.error.empty()) {
          item["error"] = r.error;
          item["detail"] = r.detail;
        }
        if (r.status == 202)
          ++accepted;
        else if (r.status == 200)
          ++duplicates;
        else
          ++failed;
        items.push_back(std::move(item));
      }
      return send_json(resp, 200,
                       {{"accepted", accepted},
                        {"duplicates", duplicates},
                        {"failed", failed},
                        {"results", std::move(items)}});
    }
    AcceptRequest ar;
    ar.source = source;
    ar.body = std::move(body);
    ar.headers = std::move(headers);
    auto idem = ar.headers.find("idempotency-key");
    if (idem != ar.headers.end()) ar.idempotency_key = idem->second;
    // No handler thread waits for the commit: the store's completion thread answers (202 only
    // once the message is durable). A TLS connection answers on its thread.
    if (auto later = api::defer_answer(req)) {
      return hub_.accept_then(ar, [later](AcceptResponse r) {
        later->finish([&r](HTTPServerResponse& out) { answer_accept(out, r); });
      });
    }
    answer_accept(resp, hub_.accept(ar));
  }

  // The answer to one inbound message: 202 (or 200 for a duplicate) with its id, or the error.
  static void answer_accept(HTTPServerResponse& resp, const AcceptResponse& r) {
    if (r.status == 202 || r.status == 200) {
      json out = {{"id", r.id}};
      if (r.status == 200) out["duplicate"] = true;
      return send_json(resp, r.status, out);
    }
    if (r.retry_after_s > 0) resp.set("Retry-After", std::to_string(r.retry_after_s));
    send_error(resp, r.status, r.error, r.detail, r.extra);
  }

  // A source with `signature:` takes signed requests only (core/signature.h): anything else is
  // answered 401 naming what failed, before anything is stored.
  bool signature_ok(const std::string& source, const std::map<std::string, std::string>& headers,
                    const std::string& body, HTTPServerResponse& resp) {
    auto it = config_.sources.find(source);
    if (it == config_.sources.end() || !it->second.signature) return true;
    const SignatureScheme& s = *it->second.signature;
    auto header = [&headers](const std::string& name) {
      auto h = headers.find(lower(name));
      return h == headers.end() ? std::string() : h->second;
    };
    SignatureCheck c = verify_signature(s, header(s.header), header(s.timestamp_header), body,
                                        hub_.clock().now_ms());
    if (c == SignatureCheck::Ok) return true;
    hub_.metrics()
        .counter("relais_signature_refused_total", {{"source", source}, {"reason", to_string(c)}})
        .inc();
    log_warn("api", "source " + source + ": request refused, " + to_string(c));
    send_error(resp, 401, "invalid signature", explain(c, s), {{"signature", to_string(c)}});
    return false;
  }

  // A system token reads the free/busy of the mailboxes its configuration names only
  // (auth.tokens[].free_busy_mailboxes, globs); admins read any.
  static bool may_read_free_busy(const api::Principal& who, const std::string& mailbox) {
    if (who.role != "system") return true;
    if (who.free_busy_mailboxes == nullptr) return false;
    std::string m = lower(mailbox);
    return std::any_of(who.free_busy_mailboxes->begin(), who.free_busy_mailboxes->end(),
                       [&m](const std::string& g) { return glob_match(lower(g), m); });
  }

  void free_busy(api::RequestContext& rc, const Poco::URI& uri, HTTPServerResponse& resp,
                 const std::string& destination) {
    // A request that names no calendar destination or no mailbox is answered 404 / 400 by
    // free_busy_answer before anything is read. Every read is audited, answered or not; the
    // mailbox is a professional's address (not a citizen's), so the trail names it.
    // The query read once: what is checked, audited and read is the same mailbox (a repeated
    // parameter is refused, not resolved one way here and another there).
    std::map<std::string, std::string> q;
    for (const auto& [k, v] : uri.getQueryParameters()) {
      if (!q.emplace(k, v).second) {
        return send_error(resp, 400, "bad request", "the parameter '" + k + "' is given twice");
      }
    }
    const std::string mailbox = q["mailbox"];
    auto it = config_.destinations.find(destination);
    const bool names_one = it != config_.destinations.end() && it->second.connector == "calendar" &&
                           mailbox.find('@') != std::string::npos;
    const std::string object = "destination:" + destination + " mailbox:" + mailbox;
    if (names_one && !may_read_free_busy(rc.who, mailbox)) {
      rc.audit("freebusy.refused", object);
      return send_error(resp, 403, "forbidden",
                        "this token may not read this mailbox's free/busy (see the token's "
                        "free_busy_mailboxes)");
    }
    free_busy_answer(q, resp, destination);
    if (names_one) {
      rc.audit("freebusy.read", object,
               "HTTP " + std::to_string(static_cast<int>(resp.getStatus())));
    }
  }

  void free_busy_answer(std::map<std::string, std::string>& q, HTTPServerResponse& resp,
                        const std::string& destination) {
    auto it = config_.destinations.find(destination);
    if (it == config_.destinations.end() || it->second.connector != "calendar") {
      return send_error(resp, 404, "unknown destination",
                        "no calendar destination named '" + destination + "' is configured");
    }
    Millis from = 0, to = 0;
    if (q["mailbox"].find('@') == std::string::npos || !parse_rfc3339(q["from"], from) ||
        !parse_rfc3339(q["to"], to) || to <= from) {
      return send_error(resp, 400, "bad request",
                        "give mailbox (an SMTP address), from and to (dates or RFC 3339 times, "
                        "from before to)");
    }
    std::string f = format_rfc3339(from).substr(0, 19) + "Z";
    std::string t = format_rfc3339(to).substr(0, 19) + "Z";
    Connector* c = hub_.connector(destination);
    if (c == nullptr) {
      return send_error(resp, 404, "unknown destination",
                        "no calendar destination named '" + destination + "' is running");
    }
    // Through the running connector: its per-mailbox pauses apply to free/busy too.
    calendar::Result r = calendar::free_busy(*c, q["mailbox"], f, t);
    if (r.kind != calendar::Result::Kind::Ok) {
      const Outcome& o = r.failure;
      bool later = o.kind == Outcome::Kind::Retry || o.kind == Outcome::Kind::Throttle;
      if (later && o.retry_after_ms) {
        resp.set("Retry-After",
                 std::to_string(std::max<int64_t>(1, (*o.retry_after_ms + 999) / 1000)));
      }
      return send_error(resp, later ? 503 : 502, "calendar unavailable", o.text);
    }
    json busy = json::array();
    for (const auto& b : r.busy) {
      busy.push_back({{"start", b.start}, {"end", b.end}, {"status", b.status}});
    }
    send_json(resp, 200, {{"mailbox", q["mailbox"]}, {"from", f}, {"to", t}, {"busy", busy}});
  }

  // {"type": "...", "correlation": "...", "body": {...}} → one delivery to `destination`.
  void direct_message(HTTPServerRequest& req, HTTPServerResponse& resp,
                      const std::string& destination) {
    std::string text;
    if (!read_body(req, config_.max_body, text, &resp)) {
      resp.setKeepAlive(false);
      return send_error(resp, 413, "payload too large", "the body exceeds the limit");
    }
    json j;
    AcceptResponse perr;
    if (!parse_json_body(text, j, perr, max_depth())) {
      return send_error(resp, perr.status, perr.error, perr.detail, perr.extra);
    }
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string() || !j.contains("body") ||
        !j["body"].is_object()) {
      return send_error(resp, 400, "bad message",
                        "send {\"type\": \"…\", \"correlation\": \"…\", \"body\": {…}}");
    }
    std::string correlation = j.contains("correlation") && j["correlation"].is_string()
                                  ? j["correlation"].get<std::string>()
                                  : "";
    AcceptResponse r = hub_.accept_for_destination(destination, j["type"].get<std::string>(),
                                                   correlation, j["body"].dump());
    if (r.status == 202) return send_json(resp, 202, {{"id", r.id}});
    if (r.retry_after_s > 0) resp.set("Retry-After", std::to_string(r.retry_after_s));
    send_error(resp, r.status, r.error, r.detail, r.extra);
  }

  void list_messages(api::RequestContext& rc) {
    const Poco::URI& uri = rc.uri;
    HTTPServerResponse& resp = rc.resp;
    MessageFilter f;
    for (const auto& [k, v] : uri.getQueryParameters()) {
      if (k == "state") {
        if (v != "unrouted" && !delivery_state_from(v)) {
          return send_error(resp, 400, "bad filter", "unknown state '" + v + "'");
        }
        f.state = v == "in_flight" ? "pending" : v;
      } else if (k == "source") {
        f.source = v;
      } else if (k == "destination") {
        f.destination = v;
      } else if (k == "correlation" || k == "correlation_key") {
        f.correlation = v;
      } else if (k == "type") {
        f.type = v;
      } else if (k == "flagged") {
        f.flagged = v == "true" || v == "1";
      } else if (k == "from" || k == "to") {
        Millis t = 0;
        if (!parse_rfc3339(v, t)) {
          return send_error(resp, 400, "bad filter",
                            k + " must be a date (2026-11-23) or an RFC 3339 time");
        }
        (k == "from" ? f.from : f.to) = t;
      } else if (k == "cursor") {
        try {
          f.before_seq = std::stoll(v);
        } catch (const std::exception&) {
          return send_error(resp, 400, "bad cursor", "use the next_cursor of a previous page");
        }
      } else if (k == "limit") {
        try {
          f.limit = std::stoi(v);
        } catch (const std::exception&) {
          return send_error(resp, 400, "bad limit", "limit is a number from 1 to 500");
        }
      } else {
        return send_error(resp, 400, "bad filter",
                          "unknown parameter '" + k +
                              "' (state, source, destination, correlation, type, flagged, from, "
                              "to, cursor, limit)");
      }
    }
    MessagePage page = hub_.store().list(f);
    json items = json::array();
    for (const auto& rec : page.items) {
      // Search results carry no payload; their error texts are cleaned of the body's personal
      // values for every role but admin.
      std::optional<api::PayloadMasker> view;
      if (rc.who.role != "admin") {
        view.emplace(rc, rec.message->source, stored_view(rec.message->body, max_depth()));
      }
      items.push_back(
          message_json(rec, hub_.dispatcher(), false, view ? &*view : nullptr, max_depth()));
    }
    json out = {{"items", std::move(items)}};
    out["next_cursor"] = page.next_cursor ? json(std::to_string(page.next_cursor)) : json(nullptr);
    send_json(resp, 200, out);
  }

  void delivery_action(api::RequestContext& rc, const std::string& id_text,
                       const std::string& action) {
    HTTPServerRequest& req = rc.req;
    HTTPServerResponse& resp = rc.resp;
    int64_t id = 0;
    try {
      size_t used = 0;
      id = std::stoll(id_text, &used);
      if (used != id_text.size()) throw std::invalid_argument("id");
    } catch (const std::exception&) {
      return send_error(resp, 404, "not found", "no delivery " + id_text);
    }
    Status s;
    std::string reason;
    if (action == "retry") {
      std::string ignored;
      read_body(req, config_.max_body, ignored, &resp);
      s = hub_.dispatcher().retry(id);
    } else {
      std::string body;
      if (!read_body(req, config_.max_body, body, &resp)) {
        resp.setKeepAlive(false);
        return send_error(resp, 413, "payload too large", "the body exceeds the limit");
      }
      json j;
      AcceptResponse perr;
      if (!parse_json_body(body, j, perr, max_depth())) {
        return send_error(resp, perr.status, perr.error, perr.detail, perr.extra);
      }
      if (!j.is_object() || !j.contains("reason") || !j["reason"].is_string() ||
          j["reason"].get<std::string>().empty()) {
        return send_error(resp, 400, "reason required",
                          "send {\"reason\": \"…\"} saying why the delivery is discarded");
      }
      reason = j["reason"].get<std::string>();
      s = hub_.dispatcher().discard(id, reason);
    }
    if (!s.ok) return send_error(resp, s.http_status, s.error, s.detail);
    rc.audit("delivery." + action, "delivery:" + std::to_string(id), reason);
    auto d = hub_.store().delivery(id);
    json out = {{"id", std::to_string(id)}, {"action", action}};
    if (d) out["state"] = to_string(d->state);
    send_json(resp, 200, out);
  }

  size_t max_depth() const { return static_cast<size_t>(config_.max_depth); }

  api::ApiShared& shared_;
  Hub& hub_;
  const HubConfig& config_;
};

}  // namespace

ApiServer::ApiServer(Hub& hub, const HubConfig& config, MappingRepository* mappings,
                     SharedState* state)
    : hub_(hub), config_(config), mappings_(mappings), state_(state) {
  console_ = hub_.stores().open_console(hub_.clock(), StoreAccess::ReadWrite, hub_.store_cipher());
  alerts_ = std::make_unique<AlertMonitor>(hub_, *console_, config_);
  std::vector<std::string> errors;
  api::TrustedProxies proxies(config_.trusted_proxies, errors);
  if (!errors.empty()) throw std::runtime_error("server.trusted_proxies: " + errors.front());
  if (state_ == nullptr) {
    own_state_ = std::make_unique<SharedState>(local_shared_state(
        hub_.clock(),
        [this](const std::string& caller) { return api::rate_limit_of(config_, caller); }));
    state_ = own_state_.get();
  }
  shared_ = std::make_unique<api::ApiShared>(hub_, config_, mappings_, console_.get(),
                                             alerts_->enabled() ? alerts_.get() : nullptr, *state_,
                                             std::move(proxies));
  retention_ = std::make_unique<RetentionJob>(hub_.store(), console_.get(), hub_.metrics(),
                                              hub_.clock(), config_.retention);
  shared_->retention = retention_.get();
  booking_ = std::make_unique<api::BookingSetup>(hub_, config_);
  shared_->booking = booking_->service();
  // Last: a constructor that throws leaves no subscription behind.
  tokens_subscription_ = api::follow_token_changes(*state_->changes, *console_);
}

ApiServer::~ApiServer() {
  stop();
  state_->changes->unsubscribe(tokens_subscription_);
}

int ApiServer::start() {
  api::HttpServerOptions o;
  o.address = config_.address;
  o.port = config_.port;
  o.threads = config_.threads;
  o.max_queued = config_.max_queued;
  o.max_connections = config_.max_connections;
  o.header_timeout_ms = config_.header_timeout_ms;
  o.body_timeout_ms = config_.body_timeout_ms;
  o.idle_timeout_ms = config_.request_timeout_ms;
  o.write_timeout_ms = config_.request_timeout_ms;
  o.max_header_bytes = static_cast<size_t>(config_.max_header_size);
  o.max_header_count = static_cast<size_t>(config_.max_header_count);
  // The largest body any endpoint reads: a batch takes 64 times max_body. A larger declared
  // body is not read; the handler answers 413 and the connection is closed.
  const int64_t max_body = config_.max_body;
  o.body_limit = [max_body](const api::HttpRequestHead& head) {
    std::string_view path(head.target);
    path = path.substr(0, path.find('?'));
    bool batch = path.size() >= 6 && path.substr(path.size() - 6) == ":batch";
    return batch ? max_body * 64 : max_body;
  };
  o.server_name = "relais";
  // Every connection, every partner's connection and the store need a descriptor.
  const long wanted = static_cast<long>(config_.max_connections) + 1024;
  const long limit = raise_descriptor_limit(wanted);
  if (limit < wanted) {
    log_warn("api", "open files limited to " + std::to_string(limit) +
                        " (hard limit): fewer than " + "server.max_connections (" +
                        std::to_string(config_.max_connections) +
                        ") + 1024; raise LimitNOFILE in the service unit");
  }
  o.tls = config_.tls;
  api::ApiShared& shared = *shared_;
  server_ = std::make_unique<api::HttpServer>(
      std::move(o),
      [&shared](HTTPServerRequest& req, HTTPServerResponse& resp) {
        ApiHandler handler(shared);
        handler.handleRequest(req, resp);
      },
      &hub_.metrics());
  port_ = server_->start();
  // Several nodes: the jobs that must run once run on the leader; its alerts read every node's
  // queues; each node reports what the dashboard shows (api/node_reports.h).
  if (hub_.clustered()) {
    alerts_->set_queue_figures([this] {
      nlohmann::json unused;
      std::vector<DestinationStats> out;
      for (auto& [name, s] : api::dispatch_figures(*shared_, unused)) out.push_back(s);
      return out;
    });
    reporter_.start(0, api::kReportEveryMs, [this] { api::report_node(*shared_); });
  }
  alerts_->start([this] { return hub_.leader(); });
  retention_->start([this] { return hub_.leader(); });
  return port_;
}

bool ApiServer::reload_tls(std::string& error) {
  if (!server_) {
    error = "the server is not running";
    return false;
  }
  return server_->reload_tls(error);
}

void ApiServer::stop() {
  reporter_.stop();
  if (alerts_) alerts_->stop();
  if (retention_) retention_->stop();
  if (shared_) shared_->rekey.stop();  // after its current batch, before the store closes
  if (server_) {
    server_->stop();  // stop accepting; requests in progress are answered
    server_.reset();
  }
}

}  // namespace relais

namespace relais::api {

std::string rate_caller(const Principal& who) {
  return who.session ? "session:" + who.name : who.name;
}

RateLimit rate_limit_of(const HubConfig& config, const std::string& caller) {
  double per_second = config.rate_limit;
  int64_t burst = config.rate_burst;
  for (const auto& t : config.tokens) {
    if (t.name != caller) continue;
    if (t.rate_limit >= 0) {
      per_second = t.rate_limit;
      burst = 0;  // the token's own rate: its own burst, else twice its rate
    }
    if (t.burst >= 0) burst = t.burst;
  }
  if (burst <= 0) burst = std::max<int64_t>(1, static_cast<int64_t>(2 * per_second));
  return RateLimit{per_second, burst};
}

}  // namespace relais::api
