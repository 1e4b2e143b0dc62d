#include "connectors/file/sftp_transport.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "connectors/http/curl_capture.h"

namespace relais::file {
namespace {

// What the known_hosts check saw (CURLOPT_SSH_KEYFUNCTION).
struct HostCheck {
  curl_khmatch match = CURLKHMATCH_OK;
  bool called = false;
};

int check_host(CURL*, const curl_khkey*, const curl_khkey*, curl_khmatch match, void* ctx) {
  auto* check = static_cast<HostCheck*>(ctx);
  check->called = true;
  check->match = match;
  // Only a key that matches known_hosts is accepted; known_hosts is never written.
  return match == CURLKHMATCH_OK ? CURLKHSTAT_FINE : CURLKHSTAT_REJECT;
}

size_t collect(char* data, size_t size, size_t n, void* ctx) {
  auto* sink = static_cast<std::pair<std::string*, size_t>*>(ctx);
  size_t len = size * n;
  size_t room = sink->second > sink->first->size() ? sink->second - sink->first->size() : 0;
  sink->first->append(data, std::min(len, room));
  return len;
}

// A path inside a quote command: double-quoted, `"` and `\` escaped (libcurl's own syntax).
std::string path_arg(const std::string& path) {
  std::string out = "\"";
  for (char c : path) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

int month_of(const std::string& m) {
  static const char* names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (m == names[i]) return i;
  }
  return -1;
}

// One line of OpenSSH's long listing ("-rw-r----- 1 u g 1234 Dec  7 09:12 name"): regular
// files only; the time "HH:MM" (this year, or last year when that would be in the future) or
// "YYYY" (older files), read as UTC.
bool parse_long_entry(const std::string& line, int64_t now_s, FileEntry& out) {
  if (line.empty() || line[0] != '-') return false;
  std::istringstream in(line);
  std::string perms, links, owner, group, size, mon, day, time;
  if (!(in >> perms >> links >> owner >> group >> size >> mon >> day >> time)) return false;
  in.get();  // the space before the name
  std::string name;
  std::getline(in, name);
  if (name.empty() || name == "." || name == "..") return false;
  int month = month_of(mon);
  if (month < 0) return false;
  try {
    out.size = std::stoll(size);
    std::tm tm{};
    time_t now = time_t(now_s);
    gmtime_r(&now, &tm);
    int this_year = tm.tm_year;
    tm = std::tm{};
    tm.tm_mon = month;
    tm.tm_mday = std::stoi(day);
    if (time.find(':') != std::string::npos) {
      tm.tm_hour = std::stoi(time.substr(0, time.find(':')));
      tm.tm_min = std::stoi(time.substr(time.find(':') + 1));
      tm.tm_year = this_year;
      if (timegm(&tm) > now_s + 86400) tm.tm_year = this_year - 1;
    } else {
      tm.tm_year = std::stoi(time) - 1900;
    }
    out.mtime_ms = int64_t(timegm(&tm)) * 1000;
  } catch (const std::exception&) {
    return false;
  }
  out.name = name;
  return true;
}

class SftpTransport final : public FileTransport {
 public:
  explicit SftpTransport(SftpSettings s) : s_(std::move(s)), h_(curl_easy_init()) {
    if (h_ == nullptr) throw std::runtime_error("sftp: curl_easy_init failed");
  }
  ~SftpTransport() override { curl_easy_cleanup(h_); }

  Status list(const std::string& dir, std::vector<FileEntry>& out) override {
    std::lock_guard<std::mutex> lock(mu_);
    out.clear();
    std::string text;
    auto sink = std::make_pair(&text, size_t(64) << 20);
    prepare(!dir.empty() && dir.back() == '/' ? dir : dir + "/");
    curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h_, CURLOPT_WRITEDATA, &sink);
    CURLcode rc = curl_easy_perform(h_);
    if (rc != CURLE_OK) {
      return failure(
          rc, rc == CURLE_REMOTE_FILE_NOT_FOUND ? "dossier introuvable" : "dossier illisible", dir);
    }
    int64_t now = int64_t(std::time(nullptr));
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      FileEntry e;
      if (parse_long_entry(line, now, e)) out.push_back(std::move(e));
    }
    return Status::success();
  }

  Status read(const std::string& path, int64_t offset, size_t max, std::string& out) override {
    std::lock_guard<std::mutex> lock(mu_);
    out.clear();
    if (max == 0) return Status::success();
    auto sink = std::make_pair(&out, max);
    prepare(path);
    std::string range = std::to_string(offset) + "-" + std::to_string(offset + int64_t(max) - 1);
    curl_easy_setopt(h_, CURLOPT_RANGE, range.c_str());
    curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h_, CURLOPT_WRITEDATA, &sink);
    CURLcode rc = curl_easy_perform(h_);
    // Reading at or past the end: nothing (libcurl refuses an offset beyond the size).
    if (rc == CURLE_BAD_DOWNLOAD_RESUME || rc == CURLE_RANGE_ERROR) {
      out.clear();
      return Status::success();
    }
    if (rc != CURLE_OK) {
      out.clear();
      return failure(rc, "fichier illisible", path);
    }
    return Status::success();
  }

  Status move(const std::string& from, const std::string& to) override {
    std::lock_guard<std::mutex> lock(mu_);
    CURLcode rc = quote({"rename " + path_arg(from) + " " + path_arg(to)});
    if (rc == CURLE_OK) return Status::success();
    if (rc == CURLE_QUOTE_ERROR) {
      // OpenSSH refuses a rename onto an existing file: tell that from the other refusals.
      FileEntry e;
      if (stat_locked(to, e).ok) {
        return Status::failure(409, "déplacement refusé : la cible existe", to);
      }
    }
    return failure(rc, "déplacement impossible", from + " → " + to);
  }

  Status write(const std::string& path, const std::string& data, bool append) override {
    std::lock_guard<std::mutex> lock(mu_);
    CurlUpload up{&data};
    prepare(path);
    curl_easy_setopt(h_, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h_, CURLOPT_APPEND, append ? 1L : 0L);
    curl_easy_setopt(h_, CURLOPT_NEW_FILE_PERMS, 0640L);
    curl_easy_setopt(h_, CURLOPT_READFUNCTION, curl_upload_read);
    curl_easy_setopt(h_, CURLOPT_READDATA, &up);
    curl_easy_setopt(h_, CURLOPT_INFILESIZE_LARGE, curl_off_t(data.size()));
    CURLcode rc = curl_easy_perform(h_);
    if (rc != CURLE_OK) return failure(rc, "écriture impossible", path);
    return Status::success();
  }

  Status remove(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    CURLcode rc = quote({"rm " + path_arg(path)});
    if (rc == CURLE_OK) return Status::success();
    FileEntry e;
    Status gone = stat_locked(path, e);
    if (!gone.ok && gone.http_status == 404) return Status::success();
    return failure(rc, "suppression impossible", path);
  }

  Status make_dir(const std::string& dir) override {
    std::lock_guard<std::mutex> lock(mu_);
    // Each level, its failure ignored ("*": it may exist), then the folder is listed.
    std::vector<std::string> commands;
    std::string prefix;
    for (const auto& part : std::filesystem::path(dir)) {
      std::string p = part.string();
      if (p == "/" || p.empty()) continue;
      prefix += "/" + p;
      commands.push_back("*mkdir " + path_arg(prefix));
    }
    CURLcode rc = quote(commands);
    if (rc == CURLE_OK) {
      std::string ignored;
      auto sink = std::make_pair(&ignored, size_t(0));
      prepare(dir + "/");
      curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, collect);
      curl_easy_setopt(h_, CURLOPT_WRITEDATA, &sink);
      rc = curl_easy_perform(h_);
    }
    if (rc != CURLE_OK) return failure(rc, "dossier non créé", dir);
    return Status::success();
  }

  Status stat(const std::string& path, FileEntry& out) override {
    std::lock_guard<std::mutex> lock(mu_);
    return stat_locked(path, out);
  }

 private:
  Status stat_locked(const std::string& path, FileEntry& out) {
    prepare(path);
    curl_easy_setopt(h_, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h_, CURLOPT_FILETIME, 1L);
    CURLcode rc = curl_easy_perform(h_);
    if (rc == CURLE_REMOTE_FILE_NOT_FOUND) {
      return Status::failure(404, "fichier introuvable", path);
    }
    if (rc != CURLE_OK) return failure(rc, "fichier illisible", path);
    curl_off_t size = -1, time = -1;
    curl_easy_getinfo(h_, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &size);
    curl_easy_getinfo(h_, CURLINFO_FILETIME_T, &time);
    out.name = path.substr(path.find_last_of('/') + 1);
    out.size = size < 0 ? 0 : int64_t(size);
    out.mtime_ms = time < 0 ? 0 : int64_t(time) * 1000;
    return Status::success();
  }

  // Runs quote commands alone (no transfer) on the server.
  CURLcode quote(const std::vector<std::string>& commands) {
    curl_slist* list = nullptr;
    for (const auto& c : commands) list = curl_slist_append(list, c.c_str());
    prepare("/");
    curl_easy_setopt(h_, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h_, CURLOPT_QUOTE, list);
    CURLcode rc = curl_easy_perform(h_);
    curl_easy_setopt(h_, CURLOPT_QUOTE, nullptr);
    curl_slist_free_all(list);
    return rc;
  }

  // Resets the handle (its connection stays in its cache) for `path` on the server.
  void prepare(const std::string& path) {
    curl_easy_reset(h_);
    std::string url = "sftp://" + s_.host + ":" + std::to_string(s_.port) + "/";
    // Each segment escaped, the slashes kept (the path is absolute on the server).
    size_t start = path.find_first_not_of('/');
    while (start != std::string::npos && start < path.size()) {
      size_t slash = path.find('/', start);
      url += url_escape(h_, path.substr(start, slash - start));
      if (slash == std::string::npos) break;
      url += "/";
      start = slash + 1;
    }
    url_ = url;
    error_[0] = 0;
    host_ = HostCheck{};
    curl_easy_setopt(h_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(h_, CURLOPT_PROTOCOLS_STR, "sftp");
    curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h_, CURLOPT_ERRORBUFFER, error_);
    curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT_MS, long(s_.connect_timeout_ms));
    curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, long(s_.timeout_ms));
    curl_easy_setopt(h_, CURLOPT_USERNAME, s_.user.c_str());
    curl_easy_setopt(h_, CURLOPT_SSH_KNOWNHOSTS, s_.known_hosts.c_str());
    curl_easy_setopt(h_, CURLOPT_SSH_KEYFUNCTION, check_host);
    curl_easy_setopt(h_, CURLOPT_SSH_KEYDATA, &host_);
    if (!s_.private_key.empty()) {
      curl_easy_setopt(h_, CURLOPT_SSH_AUTH_TYPES, long(CURLSSH_AUTH_PUBLICKEY));
      curl_easy_setopt(h_, CURLOPT_SSH_PRIVATE_KEYFILE, s_.private_key.c_str());
      if (!s_.key_passphrase.empty()) {
        curl_easy_setopt(h_, CURLOPT_KEYPASSWD, s_.key_passphrase.c_str());
      }
    } else {
      curl_easy_setopt(h_, CURLOPT_SSH_AUTH_TYPES,
                       long(CURLSSH_AUTH_PASSWORD | CURLSSH_AUTH_KEYBOARD));
      curl_easy_setopt(h_, CURLOPT_PASSWORD, s_.password.c_str());
    }
  }

  // A failed call as a Status: the known_hosts refusal told apart, libcurl's words otherwise.
  Status failure(CURLcode rc, const std::string& what, const std::string& path) const {
    std::string server = s_.host + ":" + std::to_string(s_.port);
    if (host_.called && host_.match != CURLKHMATCH_OK) {
      return Status::failure(503, "serveur SFTP refusé",
                             host_.match == CURLKHMATCH_MISMATCH
                                 ? "la clé d'hôte de " + server +
                                       " n'est pas celle de known_hosts (" + s_.known_hosts +
                                       ") : connexion refusée (serveur changé ou usurpé ?)"
                                 : server + " n'est pas dans known_hosts (" + s_.known_hosts +
                                       ") : connexion refusée");
    }
    if (rc == CURLE_LOGIN_DENIED) {
      return Status::failure(503, "authentification SFTP refusée",
                             "l'utilisateur " + s_.user + " est refusé par " + server);
    }
    std::string cause = error_[0] != 0 ? std::string(error_) : curl_easy_strerror(rc);
    return Status::failure(rc == CURLE_REMOTE_FILE_NOT_FOUND ? 404 : 503, what,
                           "sftp://" + server + path + " : " + cause);
  }

  SftpSettings s_;
  std::mutex mu_;
  CURL* h_;
  std::string url_;
  HostCheck host_;
  char error_[CURL_ERROR_SIZE] = {0};
};

}  // namespace

const ConfigSpec& sftp_spec() {
  using F = FieldType;
  static const ConfigSpec spec{
      "sftp",
      {
          {"host", F::String, "", true, "the SFTP server"},
          {"port", F::Int, "22", false, "its port", {}, nullptr, 1, 65535},
          {"user", F::String, "", true, "the account on the server"},
          {"private_key", F::String, "", false,
           "the client's private key (OpenSSH or PEM; relative paths from the configuration "
           "file's folder); without it, `password`"},
          {"key_passphrase", F::Secret, "", false, "the private key's passphrase, when it has one"},
          {"password", F::Secret, "", false, "password authentication (when no private_key)"},
          {"known_hosts", F::String, "", true,
           "the known_hosts file naming the server's host key (`[host]:port key` for another "
           "port than 22): a server whose key differs, or that the file does not name, is "
           "refused"},
          {"connect_timeout", F::Duration, "10s", false, "connection and SSH handshake"},
          {"timeout", F::Duration, "2m", false, "one whole operation (a file's upload included)"},
      }};
  return spec;
}

SftpSettings sftp_settings(const ConfigView& c, const std::string& base_dir) {
  auto path_of = [&](const std::string& key) {
    std::filesystem::path p(c.str(key));
    return (p.is_absolute() ? p : std::filesystem::path(base_dir) / p).lexically_normal().string();
  };
  SftpSettings s;
  s.host = c.str("host");
  s.port = int(c.integer("port"));
  s.user = c.str("user");
  if (c.has("private_key")) s.private_key = path_of("private_key");
  s.key_passphrase = c.str("key_passphrase");
  s.password = c.str("password");
  s.known_hosts = path_of("known_hosts");
  s.connect_timeout_ms = c.duration_ms("connect_timeout");
  s.timeout_ms = c.duration_ms("timeout");
  if (s.private_key.empty() && s.password.empty()) {
    throw std::invalid_argument(c.path() + ": give private_key or password");
  }
  if (!s.private_key.empty() && !s.password.empty()) {
    throw std::invalid_argument(c.path() + ": give private_key or password, not both");
  }
  return s;
}

std::unique_ptr<FileTransport> sftp_transport(SftpSettings settings) {
  // Start-up: a missing file is said here, not as a refused server at every poll.
  for (const std::string* file : {&settings.known_hosts, &settings.private_key}) {
    if (!file->empty() && ::access(file->c_str(), R_OK) != 0) {
      throw std::runtime_error("sftp " + settings.host + ": cannot read " + *file + " (" +
                               std::strerror(errno) + ")");
    }
  }
  return std::make_unique<SftpTransport>(std::move(settings));
}

}  // namespace relais::file
