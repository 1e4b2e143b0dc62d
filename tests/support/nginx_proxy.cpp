#include "tests/support/nginx_proxy.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tests/support/db_server_util.h"

namespace relais::testing {

namespace {

bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// `user nobody <its group>;` when the test runs as root (nginx ignores the directive, with a
// warning, otherwise).
std::string user_directive() {
  if (::geteuid() != 0) return "";
  const passwd* pw = ::getpwnam("nobody");
  if (pw == nullptr) return "user root;\n";
  const group* gr = ::getgrgid(pw->pw_gid);
  return std::string("user nobody") + (gr != nullptr ? std::string(" ") + gr->gr_name : "") + ";\n";
}

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, sep)) out.push_back(field);
  return out;
}

}  // namespace

NginxProxy::NginxProxy(std::vector<std::string> upstreams, NginxProxyOptions options)
    : upstreams_(std::move(upstreams)), options_(std::move(options)), dir_("relais-nginx-") {}

NginxProxy::~NginxProxy() {
  stop();
}

std::string NginxProxy::config() const {
  std::string servers;
  for (const auto& u : upstreams_) servers += "    server " + u + ";\n";
  std::string keepalive_upstream, keepalive_location;
  if (options_.keepalive) {
    keepalive_upstream = "    keepalive 16;\n    keepalive_timeout 20s;\n";
    keepalive_location = "      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n";
  }
  // Paths are relative to the prefix (-p DIR).
  return user_directive() +
         "worker_processes 1;\n"
         "pid nginx.pid;\n"
         "error_log error.log info;\n"
         "events { worker_connections 256; }\n"
         "http {\n"
         "  client_body_temp_path tmp/body;\n"
         "  proxy_temp_path tmp/proxy;\n"
         "  fastcgi_temp_path tmp/fastcgi;\n"
         "  uwsgi_temp_path tmp/uwsgi;\n"
         "  scgi_temp_path tmp/scgi;\n"
         "  map $cookie_relais_session $relais_session_tag {\n"
         "    \"~^(?<sent>.{8})\" $sent;\n"
         "    default -;\n"
         "  }\n"
         "  map $upstream_cookie_relais_session $relais_new_session_tag {\n"
         "    \"~^(?<set>.{8})\" $set;\n"
         "    default -;\n"
         "  }\n"
         "  map $http_x_csrf_token $relais_csrf {\n"
         "    \"\" -;\n"
         "    default csrf;\n"
         "  }\n"
         "  log_format relais '$msec\\t$upstream_addr\\t$request_method\\t$uri\\t$status\\t'\n"
         "                    '$relais_session_tag\\t$relais_new_session_tag\\t$relais_csrf';\n"
         "  access_log access.log relais;\n"
         "  upstream relais {\n" +
         servers + keepalive_upstream +
         "  }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(port_) +
         ";\n"
         "    client_max_body_size " +
         options_.client_max_body_size +
         ";\n"
         "    location / {\n"
         "      proxy_pass http://relais;\n" +
         keepalive_location +
         "      proxy_set_header Host $http_host;\n"
         "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
         "      proxy_set_header X-Forwarded-Proto $scheme;\n"
         "      proxy_read_timeout 60s;\n"
         "    }\n"
         "  }\n"
         "}\n";
}

void NginxProxy::start() {
  if (pid_ > 0) return;
  const std::string bin = find_executable({"/usr/sbin/nginx", "/usr/bin/nginx"});
  if (bin.empty()) {
    throw std::runtime_error(
        "nginx is not installed (scripts/install-deps.sh installs nginx-light)");
  }
  std::filesystem::create_directories(dir_.path() + "/tmp");
  // The workers (nobody, when the test runs as root) reach their temporary files in DIR/tmp.
  if (::geteuid() == 0) ::chmod(dir_.path().c_str(), 0711);
  std::string error;
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_port();
    const std::string conf = dir_.write("nginx.conf", config());
    const std::string log = dir_.path() + "/nginx.out";
    try {
      pid_ = ServerAccount{}.spawn({bin, "-p", dir_.path() + "/", "-e", dir_.path() + "/error.log",
                                    "-c", conf, "-g", "daemon off;"},
                                   dir_.path(), log);
      wait_until_ready(
          pid_, [&] { return accepts(port_); }, "nginx", log);
      return;
    } catch (const std::exception& e) {  // the port was taken meanwhile: another one
      error = std::string(e.what()) + "\n" + error_log();
    }
  }
  throw std::runtime_error(error);
}

void NginxProxy::stop() {
  if (pid_ <= 0) return;
  stop_child(pid_, SIGTERM, std::chrono::seconds(10));
  pid_ = -1;
}

std::string NginxProxy::error_log() const {
  std::ifstream in(dir_.path() + "/error.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<NginxLogEntry> NginxProxy::access_log() const {
  std::vector<NginxLogEntry> out;
  std::ifstream in(dir_.path() + "/access.log");
  std::string line;
  while (std::getline(in, line)) {
    auto f = split(line, '\t');
    if (f.size() < 8) continue;
    NginxLogEntry e;
    e.time = std::stod(f[0]);
    // "a, b" when nginx tried a second node after an error: the last one answered.
    auto comma = f[1].rfind(", ");
    e.upstream = comma == std::string::npos ? f[1] : f[1].substr(comma + 2);
    e.method = f[2];
    e.path = f[3];
    e.status = std::atoi(f[4].c_str());
    e.session = f[5] == "-" ? "" : f[5];
    e.new_session = f[6] == "-" ? "" : f[6];
    e.csrf = f[7] == "csrf";
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace relais::testing
