#include "connectors/http/curl_capture.h"

#include "core/log.h"

#include <algorithm>
#include <cctype>

namespace relais {
namespace {

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* c = static_cast<CurlCapture*>(user);
  size_t len = size * n;
  if (c->body.size() < c->max_body) {
    c->body.append(data, std::min(len, c->max_body - c->body.size()));
  }
  return len;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* c = static_cast<CurlCapture*>(user);
  size_t len = size * n;
  c->answered = true;
  std::string line(data, len);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string v = line.substr(colon + 1);
    auto b = v.find_first_not_of(" \t");
    auto e = v.find_last_not_of(" \t\r\n");
    c->headers[name] = b == std::string::npos ? "" : v.substr(b, e - b + 1);
  }
  return len;
}

// CURLOPT_PREREQFUNCTION: a connection is ready (new or reused) and the request goes next.
int on_prereq(void* user, char*, char*, int, int) {
  static_cast<CurlCapture*>(user)->request_started = true;
  return CURL_PREREQFUNC_OK;
}

// CURLOPT_READFUNCTION of a guarded body.
size_t on_read(char* buffer, size_t size, size_t n, void* user) {
  auto* c = static_cast<CurlCapture*>(user);
  if (c->upload_pos == 0) c->answered = false;  // the body goes out (again): wait for an answer
  size_t len = std::min(size * n, c->upload.size() - c->upload_pos);
  std::copy_n(c->upload.data() + c->upload_pos, len, buffer);
  c->upload_pos += len;
  return len;
}

// CURLOPT_SEEKFUNCTION of a guarded body: libcurl rewinds to send the body again. Allowed when
// nothing was read yet or when an answer came after the body (an authentication 401); refused
// when the body went out and nothing came back (a reused connection that died: the partner may
// have acted on it).
int on_seek(void* user, curl_off_t offset, int origin) {
  auto* c = static_cast<CurlCapture*>(user);
  if (origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_CANTSEEK;
  if (c->upload_pos > 0 && !c->answered) {
    c->rewind_refused = true;
    return CURL_SEEKFUNC_FAIL;
  }
  c->upload_pos = 0;
  return CURL_SEEKFUNC_OK;
}

bool tls_failure(CURLcode rc) {
  return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
         rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CONNECT_ERROR;
}

// A TLS 1.3 server checks the client certificate after the client finished its side of the
// handshake: libcurl has sent the request when the refusal (an alert) arrives. A server that
// refused the handshake never read the request: nothing was delivered.
bool handshake_refused(CURLcode rc, const CurlCapture& capture) {
  if (rc != CURLE_RECV_ERROR && rc != CURLE_SSL_CONNECT_ERROR && rc != CURLE_SEND_ERROR) {
    return false;
  }
  std::string e = capture.error;
  for (const char* alert :
       {"alert certificate required", "alert bad certificate", "alert unknown ca",
        "alert certificate unknown", "alert certificate expired", "alert certificate revoked",
        "alert unsupported certificate", "alert access denied"}) {
    if (e.find(alert) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string url_escape(CURL* h, const std::string& v) {
  char* e = curl_easy_escape(h, v.data(), static_cast<int>(v.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

void prepare_curl(CURL* h, const std::string& url, const CurlTransfer& t, CurlCapture& capture) {
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(t.timeout_ms));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(t.connect_timeout_ms));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, t.tls_verify ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, t.tls_verify ? 2L : 0L);
  const std::string& ca = t.tls.ca_file.empty() ? t.ca_file : t.tls.ca_file;
  if (!ca.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ca.c_str());
  if (!t.tls.client_certificate.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, t.tls.client_certificate.c_str());
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, t.tls.format == "p12" ? "P12" : "PEM");
    if (!t.tls.client_key.empty()) curl_easy_setopt(h, CURLOPT_SSLKEY, t.tls.client_key.c_str());
    if (!t.tls.client_key_password.empty()) {
      curl_easy_setopt(h, CURLOPT_KEYPASSWD, t.tls.client_key_password.c_str());
    }
  }
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &capture);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &capture);
  curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(h, CURLOPT_PREREQDATA, &capture);
  capture.error[0] = '\0';
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, capture.error);
  capture.request_started = false;
  capture.answered = false;
}

std::vector<FieldSpec> curl_transfer_fields(const std::string& timeout_description,
                                            const std::string& ca_description) {
  using F = FieldType;
  return {
      {"timeout", F::Duration, "30s", false, timeout_description},
      {"connect_timeout", F::Duration, "5s", false, "time allowed to connect"},
      {"tls_verify", F::Bool, "true", false,
       "verify the server certificate and host name (never turn off in production)"},
      {"ca_file", F::String, "", false, ca_description},
      tls_client_field(),
  };
}

CurlTransfer curl_transfer_from(const ConfigView& c, const std::string& where) {
  CurlTransfer t;
  t.timeout_ms = c.duration_ms("timeout");
  t.connect_timeout_ms = c.duration_ms("connect_timeout");
  t.tls_verify = c.boolean("tls_verify");
  t.ca_file = c.str("ca_file");
  t.tls = read_tls_client(c.object("tls"), where);
  if (!t.ca_file.empty() && !t.tls.ca_file.empty() && t.ca_file != t.tls.ca_file) {
    // Two CA bundles named: the tls block's is used. Said once, at start-up.
    log_warn("config", where + ": ca_file (" + t.ca_file + ") is ignored: tls.ca_file (" +
                           t.tls.ca_file + ") is used; keep only tls.ca_file");
  }
  return t;
}

bool method_sends_body(const std::string& method) {
  return method != "GET" && method != "HEAD";
}

bool idempotent_method(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS";
}

void set_request(CURL* h, CurlCapture& capture, const std::string& method, const std::string& body,
                 bool idempotent) {
  capture.upload.clear();
  capture.upload_pos = 0;
  capture.guarded = false;
  capture.rewind_refused = false;
  bool bodiless = !method_sends_body(method) || (method == "DELETE" && body.empty());
  if (method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else {
    if (method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!bodiless) {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      capture.upload = body;
      if (idempotent || body.empty()) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, capture.upload.data());
      } else {
        capture.guarded = true;
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &capture);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &capture);
      }
    }
  }
  // Without a body to guard, only a connection of its own keeps libcurl from re-sending (it
  // retries on a reused connection only).
  if (!idempotent && !capture.guarded) {
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
  }
}

CurlFailure classify_curl_failure(CURLcode rc, const CurlCapture& capture, bool idempotent) {
  // Before CURLOPT_PREREQFUNCTION nothing was written on the connection (DNS, connect, TLS
  // handshake). A connect failure after it comes from libcurl's own retry of a request it
  // could re-send (idempotent, or whose body had not gone out): nothing reached the partner.
  bool started = capture.request_started || capture.rewind_refused;
  if (!started || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT ||
      handshake_refused(rc, capture)) {
    return CurlFailure::NotSent;
  }
  return idempotent ? CurlFailure::Sent : CurlFailure::UnknownOutcome;
}

Outcome curl_failure_outcome(CURLcode rc, CurlFailure failure, const std::string& what,
                             const std::string& detail) {
  // libcurl's own words only for TLS failures (OpenSSL's reason: no URL, no data of the
  // message); the others keep libcurl's generic text.
  const bool tls = tls_failure(rc) || detail.find("SSL") != std::string::npos;
  std::string reason = curl_easy_strerror(rc);
  if (tls && !detail.empty() && detail != reason) reason += " (" + detail + ")";
  if (failure == CurlFailure::UnknownOutcome) {
    return Outcome::retry("unknown_outcome", static_cast<int>(rc),
                          "demande envoyée, restée sans réponse (" + reason +
                              ") : le partenaire l'a peut-être prise en compte ; le connecteur "
                              "vérifie avant de la renvoyer quand le partenaire le permet");
  }
  std::string cls = rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "network";
  if (tls_failure(rc) || (tls && detail.find("alert") != std::string::npos)) cls = "tls";
  // An idempotent request that went out and got no complete answer reached the partner: say
  // so (a partner that accepts and stays silent is not one that cannot be reached).
  std::string lead = failure == CurlFailure::Sent ? "no complete answer from " : "cannot reach ";
  return Outcome::retry(cls, static_cast<int>(rc), lead + what + ": " + reason);
}

Status probe_connection(const std::string& url, const CurlTransfer& t) {
  std::string where = "(adresse illisible)";
  if (CURLU* u = curl_url()) {
    if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
      char* host = nullptr;
      char* port = nullptr;
      if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
          curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        where = std::string(host) + ":" + port;
      }
      curl_free(host);
      curl_free(port);
    }
    curl_url_cleanup(u);
  }
  CURL* h = curl_easy_init();
  if (h == nullptr) return Status::failure(500, "test impossible", "curl_easy_init a échoué");
  CurlCapture ignored(0);
  prepare_curl(h, url, t, ignored);
  curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
  CURLcode rc = curl_easy_perform(h);
  curl_easy_cleanup(h);
  if (rc == CURLE_OK) return Status::success();
  return Status::failure(502, "connexion impossible",
                         "connexion à " + where + " impossible : " + curl_easy_strerror(rc));
}

}  // namespace relais
