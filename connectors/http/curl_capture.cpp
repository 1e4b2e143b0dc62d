#include "connectors/http/curl_capture.h"

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
  if (!t.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, t.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &capture);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &capture);
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
