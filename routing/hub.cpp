#include "routing/hub.h"

#include <algorithm>
#include <cctype>

#include "core/crypto.h"
#include "core/json_reader.h"
#include "core/log.h"

namespace relais {

bool parse_json_body(const std::string& text, nlohmann::json& out, AcceptResponse& error,
                     size_t max_depth) {
  JsonReadError e;
  if (read_json(text, out, e, max_depth)) return true;
  // The reader's status becomes the answer: 400 for text that is not JSON, 422 for JSON that
  // relais refuses to take in (too deep, ambiguous keys).
  error.status = 400;
  error.error = "malformed JSON";
  error.detail = e.detail;
  error.extra = nlohmann::json::object();
  switch (e.kind) {
    case JsonReadError::Kind::Syntax:
    case JsonReadError::Kind::NotNumber:
      break;
    case JsonReadError::Kind::TooDeep:
      error.status = 422;
      error.error = "too deeply nested";
      error.extra["depth"] = e.depth;
      error.extra["max_depth"] = e.max_depth;
      break;
    case JsonReadError::Kind::DuplicateKey:
      error.status = 422;
      error.error = "duplicate key";
      error.extra["path"] = e.path;
      break;
  }
  if (e.has_offset) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < e.offset && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    error.extra["offset"] = e.offset;
    error.extra["line"] = line;
    error.extra["column"] = column;
  }
  return false;
}

Hub::Hub(const HubConfig& config, const ConnectorRegistry& registry, const Clock& clock,
         std::shared_ptr<MappingStage> mappings, const EnricherRegistry* enrichers,
         const PollerRegistry* pollers)
    : config_(config), clock_(clock), ids_(clock), mappings_(std::move(mappings)) {
  metrics_.describe("relais_received_total", "counter", "Messages accepted, per source");
  metrics_.describe("relais_duplicates_total", "counter",
                    "Messages recognised as resubmissions (same idempotency key)");
  metrics_.describe("relais_rejected_total", "counter", "Inbound requests refused, per source");
  metrics_.describe("relais_routed_total", "counter",
                    "Deliveries created, per source and destination");
  metrics_.describe("relais_unrouted_total", "counter", "Messages that matched no route");

  for (const auto& route : config_.routes) {
    for (const auto& t : route.to) {
      if (!t.mapping.empty() && (!mappings_ || !mappings_->knows(t.mapping))) {
        throw std::runtime_error("route '" + route.name + "' names mapping '" + t.mapping +
                                 "', which is not loaded");
      }
    }
  }

  backend_ = open_store_backend(config_.store);
  // Alone on PostgreSQL: one dispatching node per database (a cluster shares the keys instead).
  if (std::string why; !config_.cluster_enabled() && !backend_->hold_dispatch(why)) {
    throw std::runtime_error(why);
  }
  StoreOptions so;
  so.synchronous_full = config_.store_sync_full;
  so.max_batch = static_cast<size_t>(config_.store_max_batch);
  so.idempotency_retention_ms = config_.store_idempotency_retention_ms;
  so.busy_timeout_ms = config_.store_busy_timeout_ms;
  cipher_ = load_at_rest_cipher(config_.store_encryption);
  so.cipher = cipher_;
  store_ = backend_->open_messages(so);
  xrefs_ = backend_->open_xrefs(clock_, StoreAccess::ReadWrite);
  pairings_ = backend_->open_pairings(clock_, cipher_);

  for (const auto& [name, dc] : config_.destinations) {
    const ConnectorKind* kind = registry.find(dc.connector);
    ConnectorContext ctx;
    ctx.name = name;
    ctx.config = dc.settings;
    ctx.concurrency = dc.concurrency;
    ctx.metrics = &metrics_;
    ctx.clock = &clock_;
    ctx.stores = backend_.get();
    ctx.base_dir = config_.base_dir;
    ctx.xrefs = xrefs_.get();
    ctx.pairings = pairings_.get();
    ctx.hub = this;
    ctx.max_retry_after_ms = dc.retry.max_retry_after_ms;
    connectors_[name] = kind->create(ctx);
  }
  for (const auto& [name, ec] : config_.enrichers) {
    const EnricherKind* kind = enrichers ? enrichers->find(ec.kind) : nullptr;
    if (kind == nullptr) throw std::runtime_error("enricher kind '" + ec.kind + "' is not known");
    EnricherContext ctx;
    ctx.name = name;
    ctx.config = ec.settings;
    ctx.metrics = &metrics_;
    ctx.clock = &clock_;
    enrichers_[name] = kind->create(ctx);
  }
  for (const auto& route : config_.routes) routes_by_name_[route.name] = &route;
  // Every counter of the accept path, looked up once: read-only (lock-free) afterwards.
  for (const auto& [sname, sc] : config_.sources) {
    SourceCounters& c = counters_[sname];
    c.received = &metrics_.counter("relais_received_total", {{"source", sname}});
    c.rejected = &metrics_.counter("relais_rejected_total", {{"source", sname}});
    c.unrouted = &metrics_.counter("relais_unrouted_total", {{"source", sname}});
    c.duplicates = &metrics_.counter("relais_duplicates_total", {{"source", sname}});
    for (const auto& [dname, dc] : config_.destinations) {
      c.routed[dname] =
          &metrics_.counter("relais_routed_total", {{"source", sname}, {"destination", dname}});
    }
  }
  dispatcher_ = std::make_unique<Dispatcher>(
      *store_, metrics_, clock_,
      [this](const QueuedDelivery& q, int slot) { return process_guarded(q, slot); });
  for (const auto& [name, dc] : config_.destinations) {
    DestinationSettings ds{name, dc.concurrency, dc.retry, dc.hold_on_dead};
    ds.replace_pending = dc.replace_pending;
    ds.queue_in_memory = dc.queue_in_memory;
    ds.nice = dc.nice;
    dispatcher_->add_destination(ds);
  }
  for (const auto& [sname, sc] : config_.sources) {
    if (!sc.poll) continue;
    const PollerKind* kind = pollers ? pollers->find(sc.poll->kind) : nullptr;
    if (kind == nullptr) {
      throw std::runtime_error("polling-source kind '" + sc.poll->kind + "' is not known");
    }
    PollerContext pctx;
    pctx.name = sname;
    pctx.config = sc.poll->settings;
    pctx.metrics = &metrics_;
    pctx.clock = &clock_;
    pctx.base_dir = config_.base_dir;
    polling_.push_back(std::make_unique<PollingSource>(
        sname, *sc.poll, kind->create(pctx), *store_,
        [this](const std::string& source, const PollBatch& batch) {
          return prepare_polled(source, batch);
        },
        clock_, metrics_));
  }
  store_->set_commit_listener([this](std::vector<QueuedDelivery>&& fresh) {
    // In a cluster the node owning each key reads it from the store's feed (only there, so
    // that nothing is queued twice): this node's feed is told to read now.
    if (config_.cluster_enabled()) {
      if (feed_) feed_->wake();
      return;
    }
    dispatcher_->enqueue(std::move(fresh));
  });
}

namespace {
// The change-bus topic of a wake-up: "wake\x1f<destination>\x1f<delivery id>\x1f<key>".
const std::string kWakeTopic = std::string("wake") + '\x1f';
}  // namespace

void Hub::join_cluster(std::unique_ptr<Membership> membership, ChangeBus* changes) {
  membership_ = std::move(membership);
  changes_ = changes;
  feed_ = std::make_unique<ClusterFeed>(*store_, *dispatcher_, *membership_,
                                        config_.cluster.feed_poll_ms,
                                        [this](bool leading) { set_polling(leading); });
  dispatcher_->set_cluster(
      [this](const std::string& key, int64_t id) { return feed_->may_start(key, id); });
  if (changes_ != nullptr) {
    wake_subscription_ = changes_->subscribe([this](const std::string& topic) {
      if (topic.rfind(kWakeTopic, 0) != 0) return;  // 5 characters
      size_t a = topic.find('\x1f', 5), b = a == std::string::npos ? a : topic.find('\x1f', a + 1);
      if (b == std::string::npos) return;
      std::string destination = topic.substr(5, a - 5);
      int64_t id = std::strtoll(topic.c_str() + a + 1, nullptr, 10);
      std::string key = topic.substr(b + 1);
      if (id != 0) {
        dispatcher_->wake_delivery(destination, id, key);
      } else {
        dispatcher_->wake(destination, key);
      }
    });
  }
}

std::string Hub::cluster_status() const {
  if (!membership_) return "";
  std::string s = membership_->describe();
  if (feed_) {
    std::string problem = feed_->problem();
    if (!problem.empty()) s += " ; " + problem;
  }
  return s;
}

std::vector<int> Hub::owned_partitions() const {
  std::vector<int> out;
  if (!membership_) return out;
  for (int p = 0; p < membership_->partitions(); ++p) {
    if (membership_->owns(p)) out.push_back(p);
  }
  return out;
}

void Hub::set_polling(bool on) {
  for (auto& p : polling_) {
    if (on) {
      p->start();
    } else {
      p->stop();
    }
  }
  if (!polling_.empty()) {
    log_info("hub", std::string(on ? "this node leads: polling sources started"
                                   : "this node no longer leads: polling sources stopped"));
  }
}

Hub::~Hub() {
  stop();
}

void Hub::start() {
  if (membership_) {
    // The feed reads each partition as this node gains it; the leader polls.
    dispatcher_->start();
    feed_->start();
    membership_->start([this](int partition) { return feed_->idle(partition); });
    running_ = true;
    return;
  }
  // Keys held behind a dead delivery first; the active deliveries are then read back page by
  // page once the dispatcher runs (a backlog of millions is not loaded at once).
  auto held = store_->load_dead_heads();
  for (const auto& h : held) dispatcher_->hold(h);
  int64_t n = dispatcher_->recover();
  if (n > 0 || !held.empty()) {
    log_info("hub", "recovering " + std::to_string(n) + " active deliveries and " +
                        std::to_string(held.size()) +
                        " held keys from the store (deliveries read back page by page)");
  }
  dispatcher_->start();
  running_ = true;
  for (auto& p : polling_) p->start();
}

void Hub::stop() {
  if (!store_) return;
  running_ = false;
  if (feed_) feed_->stop();  // nothing queued afterwards; stops the polling sources if leading
  for (auto& p : polling_) p->stop();
  if (dispatcher_) dispatcher_->stop(config_.shutdown_grace_ms);
  store_->flush();
  // Every outcome committed: the partitions are given up, the others take over at once.
  if (membership_) membership_->stop(config_.shutdown_grace_ms);
  if (changes_ != nullptr && wake_subscription_ >= 0) changes_->unsubscribe(wake_subscription_);
  wake_subscription_ = -1;
  store_->close();
}

bool Hub::ready() const {
  return running_ && store_->healthy();
}

Hub::Prepared Hub::prepare(const SourceConfig& source, const std::string& body,
                           const std::string& idempotency_header,
                           const std::map<std::string, std::string>& headers) {
  Prepared p;
  auto doc = std::make_shared<nlohmann::json>();
  if (!parse_json_body(body, *doc, p.error, static_cast<size_t>(config_.max_depth))) {
    p.failed = true;
    return p;
  }
  auto fail = [&](const std::string& title, const std::string& detail) {
    p.failed = true;
    p.error.status = 422;
    p.error.error = title;
    p.error.detail = detail;
  };
  auto m = std::make_shared<Message>();
  m->source = source.name;
  std::string err;
  if (!source.type.render(*doc, m->type, err) || m->type.empty()) {
    fail("no message type", "the type expression " + source.type.text() +
                                " gives nothing: " + (err.empty() ? "empty value" : err));
    return p;
  }
  if (!source.correlation.empty()) {
    bool found = false;
    std::string tried;
    for (const auto& t : source.correlation) {
      if (t.render(*doc, m->correlation, err)) {
        found = true;
        break;
      }
      tried += (tried.empty() ? "" : ", ") + t.text();
    }
    if (!found) {
      fail("no correlation key", "none of the correlation expressions gives a value (" + tried +
                                     "): the message cannot be ordered");
      return p;
    }
  }
  if (!idempotency_header.empty()) {
    m->idempotency = idempotency_header;
  } else if (source.idempotency) {
    const auto* v = source.idempotency->find(*doc);
    if (v == nullptr || !scalar_text(*v, m->idempotency)) {
      fail("no idempotency key",
           "the idempotency path " + source.idempotency->text() + " gives no text or number");
      return p;
    }
  }
  if (m->idempotency.size() > 256) {
    fail("idempotency key too long", "at most 256 characters");
    return p;
  }
  for (const auto& name : source.keep_headers) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto it = headers.find(lower);
    if (it != headers.end()) m->headers[name] = it->second;
  }
  m->id = ids_.next();
  m->body = body;
  m->received_at = clock_.now_ms();
  m->doc = doc;
  // The same key with another body is a conflict, not a resubmission: keep the body's digest.
  if (!m->idempotency.empty()) p.incoming.body_digest = sha256_hex(body);
  p.incoming.message = m;
  for (const auto& route : config_.routes) {
    if (route.source != source.name) continue;
    if (!route.types.empty() &&
        std::none_of(route.types.begin(), route.types.end(),
                     [&](const std::string& g) { return glob_match(g, m->type); })) {
      continue;
    }
    if (route.when && !route.when->matches(*doc)) continue;
    for (const auto& t : route.to) {
      p.incoming.deliveries.push_back(NewDelivery{t.destination, route.name, t.mapping, 0});
    }
  }
  return p;
}

bool Hub::stage(const AcceptRequest& request, std::vector<Incoming>& batch,
                std::vector<std::string>& dests, AcceptResponse& refused) {
  auto it = config_.sources.find(request.source);
  if (it == config_.sources.end()) {
    refused.status = 404;
    refused.error = "unknown source";
    refused.detail = "no source named '" + request.source + "' is configured";
    return false;
  }
  Prepared p = prepare(it->second, request.body, request.idempotency_key, request.headers);
  if (p.failed) {
    counters_.at(request.source).rejected->inc();
    refused = std::move(p.error);
    return false;
  }
  for (const auto& d : p.incoming.deliveries) dests.push_back(d.destination);
  batch.push_back(std::move(p.incoming));
  return true;
}

AcceptResponse Hub::accept(const AcceptRequest& request) {
  std::vector<Incoming> batch;
  std::vector<std::string> dests;
  AcceptResponse out;
  if (!stage(request, batch, dests, out)) return out;
  auto results = store_->accept(std::move(batch));
  settle(request.source, results.front(), dests, out);
  return out;
}

void Hub::accept_then(const AcceptRequest& request, std::function<void(AcceptResponse)> done) {
  std::vector<Incoming> batch;
  std::vector<std::string> dests;
  AcceptResponse refused;
  if (!stage(request, batch, dests, refused)) return done(std::move(refused));
  store_->accept_then(std::move(batch), [this, source = request.source, dests = std::move(dests),
                                         done = std::move(done)](std::vector<AcceptResult> r) {
    AcceptResponse out;
    settle(source, r.front(), dests, out);
    done(std::move(out));
  });
}

void Hub::table_published(const PublishedTable& table) {
  for (const auto& [name, connector] : connectors_) connector->on_table_published(table);
}

std::vector<PollingState> Hub::polling_states() const {
  std::vector<PollingState> out;
  for (const auto& p : polling_) out.push_back(p->state());
  return out;
}

Status Hub::post(const std::string& destination, const std::string& type,
                 const std::string& correlation, const std::string& body, std::string& id) {
  AcceptResponse r = accept_for_destination(destination, type, correlation, body);
  if (r.status >= 400) return Status::failure(r.status, r.error, r.detail);
  id = r.id;
  return Status::success();
}

Status Hub::submit(const std::string& source, const std::string& body,
                   const std::string& idempotency_key, std::string& id, bool& duplicate) {
  if (!has_source(source)) {
    return Status::failure(404, "unknown source", "no source named '" + source + "'");
  }
  AcceptRequest request;
  request.source = source;
  request.body = body;
  request.idempotency_key = idempotency_key;
  AcceptResponse r = accept(request);
  if (r.status >= 400) return Status::failure(r.status, r.error, r.detail);
  id = r.id;
  duplicate = r.status == 200;
  return Status::success();
}

void Hub::wake(const std::string& destination, const std::string& key) {
  wake_delivery(destination, 0, key);
}

void Hub::wake_delivery(const std::string& destination, int64_t delivery_id,
                        const std::string& key) {
  if (changes_ != nullptr) {
    // Several nodes: the one owning the key wakes it (every node hears, this one included).
    const std::string sep(1, '\x1f');
    changes_->publish(kWakeTopic + destination + sep + std::to_string(delivery_id) + sep + key);
    return;
  }
  if (!dispatcher_) return;
  if (delivery_id != 0) {
    dispatcher_->wake_delivery(destination, delivery_id, key);
  } else {
    dispatcher_->wake(destination, key);
  }
}

AcceptResponse Hub::accept_for_destination(const std::string& destination, const std::string& type,
                                           const std::string& correlation,
                                           const std::string& body) {
  AcceptResponse out;
  if (connectors_.count(destination) == 0) {
    out.status = 404;
    out.error = "unknown destination";
    out.detail = "no destination named '" + destination + "' is configured";
    return out;
  }
  nlohmann::json doc;
  if (!parse_json_body(body, doc, out, static_cast<size_t>(config_.max_depth))) return out;
  auto m = std::make_shared<Message>();
  m->id = ids_.next();
  m->source = "relais";
  m->type = type;
  m->correlation = correlation;
  m->body = body;
  m->received_at = clock_.now_ms();
  m->doc = std::make_shared<const nlohmann::json>(std::move(doc));
  Incoming in;
  in.message = std::move(m);
  in.deliveries.push_back(NewDelivery{destination, "direct", "", 0});
  std::vector<Incoming> batch;
  batch.push_back(std::move(in));
  AcceptResult r = store_->accept(std::move(batch)).front();
  out.id = r.id;
  if (r.kind == AcceptResult::Kind::Failed) {
    not_stored(r, out);
  } else {
    out.status = 202;
  }
  return out;
}

void Hub::settle(const std::string& source, const AcceptResult& r,
                 const std::vector<std::string>& dests, AcceptResponse& out) {
  const SourceCounters& c = counters_.at(source);
  out.id = r.id;
  switch (r.kind) {
    case AcceptResult::Kind::Created:
      out.status = 202;
      c.received->inc();
      if (dests.empty()) c.unrouted->inc();
      for (const auto& d : dests) c.routed.at(d)->inc();
      break;
    case AcceptResult::Kind::Duplicate:
      out.status = 200;
      c.duplicates->inc();
      break;
    case AcceptResult::Kind::Conflict: {
      SourceReject conflict = idempotency_conflict("", r.id);
      out.status = conflict.status;
      out.error = std::move(conflict.error);
      out.detail = std::move(conflict.detail);
    }
      out.id.clear();  // nothing was stored: no id of its own
      out.extra["first_id"] = r.id;
      c.rejected->inc();
      break;
    case AcceptResult::Kind::Failed:
      not_stored(r, out);
      break;
  }
}

void Hub::not_stored(const AcceptResult& r, AcceptResponse& out) {
  out.status = 503;
  out.error = "not stored";
  out.detail = r.error + " (the message was not accepted: send it again)";
  out.retry_after_s = 5;
}

std::vector<AcceptResponse> Hub::accept_batch(const std::string& source_name,
                                              const std::string& ndjson,
                                              const std::map<std::string, std::string>& headers) {
  std::vector<AcceptResponse> out;
  auto it = config_.sources.find(source_name);
  if (it == config_.sources.end()) return out;
  std::vector<PolledRecord> records;  // the lines, in the shape of polled records
  std::vector<size_t> lines;
  size_t start = 0, line_no = 0;
  while (start <= ndjson.size()) {
    size_t end = ndjson.find('\n', start);
    if (end == std::string::npos) end = ndjson.size();
    std::string line = ndjson.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ++line_no;
    start = end + 1;
    bool blank =
        std::all_of(line.begin(), line.end(), [](unsigned char c) { return std::isspace(c) != 0; });
    if (!blank) {
      PolledRecord r;
      r.body = std::move(line);
      records.push_back(std::move(r));
      lines.push_back(line_no);
    }
    if (end == ndjson.size()) break;
  }
  PreparedBatch pb = prepare_all(it->second, records, headers, out);
  for (size_t i = 0; i < out.size(); ++i) out[i].extra["line"] = lines[i];
  if (pb.batch.empty()) return out;
  auto results = store_->accept(std::move(pb.batch));
  settle_all(source_name, results, pb, out);
  return out;
}

Hub::PreparedBatch Hub::prepare_all(const SourceConfig& source,
                                    const std::vector<PolledRecord>& records,
                                    const std::map<std::string, std::string>& headers,
                                    std::vector<AcceptResponse>& out) {
  PreparedBatch pb;
  for (const auto& rec : records) {
    AcceptResponse r;
    if (!rec.unreadable.empty()) {
      r.status = 422;
      r.error = "unreadable record";
      r.detail = rec.unreadable;
      counters_.at(source.name).rejected->inc();
      out.push_back(std::move(r));
      continue;
    }
    Prepared p = prepare(source, rec.body, rec.idempotency_key, headers);
    if (p.failed) {
      counters_.at(source.name).rejected->inc();
      out.push_back(std::move(p.error));
      continue;
    }
    std::vector<std::string> d;
    for (const auto& nd : p.incoming.deliveries) d.push_back(nd.destination);
    pb.dests.push_back(std::move(d));
    out.push_back(std::move(r));
    pb.slot_of.push_back(out.size() - 1);
    pb.batch.push_back(std::move(p.incoming));
  }
  return pb;
}

void Hub::settle_all(const std::string& source, const std::vector<AcceptResult>& results,
                     const PreparedBatch& pb, std::vector<AcceptResponse>& out) {
  for (size_t i = 0; i < results.size(); ++i) {
    settle(source, results[i], pb.dests[i], out[pb.slot_of[i]]);
  }
}

PollingSource::Commit Hub::prepare_polled(const std::string& source_name, const PollBatch& batch) {
  auto it = config_.sources.find(source_name);
  if (it == config_.sources.end()) {
    return [](bool& stored) {
      stored = false;
      return std::vector<PolledOutcome>{};
    };
  }
  // What the commit needs, shared by the copies of the function (no reference to the batch).
  struct Prepared {
    PreparedBatch pb;
    std::vector<AcceptResponse> out;
    SourceCheckpoint cp;
  };
  auto p = std::make_shared<Prepared>();
  p->pb = prepare_all(it->second, batch.records, {}, p->out);
  p->cp.source = source_name;
  p->cp.value = batch.checkpoint;
  for (size_t i = 0; i < p->out.size(); ++i) {
    if (p->out[i].status >= 400) {
      p->cp.rejects.push_back(SourceReject{batch.records[i].position, p->out[i].status,
                                           p->out[i].error, p->out[i].detail});
    }
  }
  // A record refused at the commit (its key used with another body) is kept with its position.
  for (size_t slot : p->pb.slot_of) p->cp.positions.push_back(batch.records[slot].position);
  return [this, p, source_name](bool& stored) {
    auto results = store_->accept_polled(std::move(p->pb.batch), std::move(p->cp), clock_.now_ms());
    // The last result is the checkpoint's: the whole batch was committed, or nothing of it.
    stored = !results.empty() && results.back().kind != AcceptResult::Kind::Failed;
    if (!results.empty()) results.pop_back();
    settle_all(source_name, results, p->pb, p->out);
    std::vector<PolledOutcome> outcomes;
    outcomes.reserve(p->out.size());
    for (auto& r : p->out) {
      PolledOutcome o;
      o.status = stored ? r.status : 503;
      o.id = r.id.empty() && r.extra.contains("first_id") ? r.extra["first_id"].get<std::string>()
                                                          : r.id;
      o.error = stored ? r.error : "not stored";
      o.detail = stored ? r.detail : "the store could not commit: read again at the next poll";
      outcomes.push_back(std::move(o));
    }
    return outcomes;
  };
}

AttemptResult Hub::process_guarded(const QueuedDelivery& q, int slot) {
  // The dispatcher's workers must not see an exception (it would end the process): whatever a
  // connector, an enricher or a mapping throws despite its contract becomes a retry whose
  // reason the desk shows. The log names the delivery only: an exception's text may quote the
  // input (a JSON parser's "last read: …").
  try {
    return process(q, slot);
  } catch (const std::exception& e) {
    log_error("hub", "delivery " + std::to_string(q.id) + " to " + q.destination +
                         ": internal error (an exception escaped the connector or a step before "
                         "it); will try again");
    AttemptResult r;
    r.outcome = Outcome::retry("internal", 0,
                               std::string("erreur interne pendant le traitement : ") + e.what());
    return r;
  } catch (...) {
    log_error("hub", "delivery " + std::to_string(q.id) + " to " + q.destination +
                         ": internal error (unknown exception); will try again");
    AttemptResult r;
    r.outcome = Outcome::retry("internal", 0, "erreur interne pendant le traitement");
    return r;
  }
}

AttemptResult Hub::process(const QueuedDelivery& q, int slot) {
  AttemptResult r;
  MessagePtr m = q.message;
  if (!m) m = store_->message_by_seq(q.message_seq);
  if (!m) {
    r.outcome = Outcome::reject("store", 0, "the message of this delivery is missing");
    return r;
  }
  if (!m->unreadable.empty()) {
    // Encrypted under a key that is not configured, or changed: never delivered as it is. A
    // person configures the key (store.encryption.keys) and retries.
    r.outcome = Outcome::reject("store", 0, m->unreadable);
    return r;
  }
  std::shared_ptr<const nlohmann::json> doc = m->doc;
  if (!doc) {
    // Read again from the store (after a restart): with the door's guards, so that a document
    // stored by an older relais, deeper than the limit, is refused here instead of overflowing
    // the stack in a copy or a mapping.
    auto parsed = std::make_shared<nlohmann::json>(
        read_stored_json(m->body, static_cast<size_t>(config_.max_depth)));
    if (parsed->is_discarded()) {
      r.outcome = Outcome::reject("message", 0,
                                  "the stored message is not JSON relais can read (nested deeper "
                                  "than server.max_depth, or malformed)");
      return r;
    }
    doc = parsed;
  }
  auto cit = connectors_.find(q.destination);
  if (cit == connectors_.end()) {
    r.outcome = Outcome::retry("config", 0, "destination not configured");
    return r;
  }
  DeliveryRequest req;
  req.delivery_id = q.id;
  req.message = m.get();
  req.body = doc.get();
  req.attempt = q.attempts + 1;
  req.slot = slot;
  // Enrichers of the route, in order, on a copy of the body.
  std::optional<nlohmann::json> enriched;
  auto rit = routes_by_name_.find(q.route);
  if (rit != routes_by_name_.end() && !rit->second->enrich.empty()) {
    enriched = *doc;
    for (const auto& step : rit->second->enrich) {
      auto eit = enrichers_.find(step.enricher);
      const auto& ec = config_.enrichers.at(step.enricher);
      Enrichment e = eit->second->enrich(*m, *enriched);
      switch (e.kind) {
        case Enrichment::Kind::Ok:
        case Enrichment::Kind::Flagged:
          if (!e.data.is_null() && !ec.target.set(*enriched, std::move(e.data))) {
            r.outcome =
                Outcome::reject("enrichment", 0,
                                step.enricher + ": cannot write the result at " + ec.target.text());
            return r;
          }
          if (e.kind == Enrichment::Kind::Flagged) r.flags.push_back(step.enricher + ": " + e.flag);
          break;
        case Enrichment::Kind::Retry:
          if (step.pass_when_unavailable) {
            r.flags.push_back(step.enricher + ": non enrichi (" + e.text + ")");
            break;
          }
          r.outcome = Outcome::retry(e.error_class.empty() ? "enrichment" : e.error_class, e.code,
                                     step.enricher + ": " + e.text, e.retry_after_ms);
          return r;
        case Enrichment::Kind::Reject:
          r.outcome = Outcome::reject(e.error_class.empty() ? "enrichment" : e.error_class, e.code,
                                      step.enricher + ": " + e.text);
          return r;
      }
    }
    req.body = &*enriched;
  }
  const nlohmann::json& input = enriched ? *enriched : *doc;
  MappedPayload mapped;
  if (!q.mapping.empty()) {
    if (!mappings_ || !mappings_->knows(q.mapping)) {
      r.outcome = Outcome::reject("mapping", 0, "mapping '" + q.mapping + "' is not loaded");
      return r;
    }
    mapped = mappings_->map(q.mapping, *m, input);
    r.mapping = q.mapping;
    r.mapping_version = mapped.version;
    if (mapped.kind == MappedPayload::Kind::Skip) {
      r.outcome = Outcome::skip(mapped.reason);
      return r;
    }
    if (mapped.kind == MappedPayload::Kind::Error) {
      r.outcome = Outcome::reject("mapping", 0, mapped.reason);
      return r;
    }
    r.payload = mapped.text;
    req.payload = &mapped.text;
    req.mapped = &mapped.json;
    req.content_type = mapped.content_type;
  } else {
    if (enriched) {
      r.payload = enriched->dump();
      req.payload = &*r.payload;
    } else {
      req.payload = &m->body;
    }
    req.mapped = &input;
    req.content_type = "application/json";
  }
  r.outcome = cit->second->deliver(req);
  return r;
}

}  // namespace relais
