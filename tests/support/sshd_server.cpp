#include "tests/support/sshd_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace relais::testing {
namespace {

constexpr const char* kSshd = "/usr/sbin/sshd";
constexpr const char* kKeygen = "/usr/bin/ssh-keygen";

void keygen(const std::string& path, const std::string& passphrase = "") {
  auto r = run_command(
      {kKeygen, "-q", "-t", "ed25519", "-N", passphrase, "-C", "relais-test", "-f", path});
  if (r.exit_code != 0) throw std::runtime_error("ssh-keygen failed: " + r.err);
}

std::string first_line(const std::string& text) {
  auto nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// The pids whose parent is `parent` (from /proc/<pid>/stat).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    pid_t pid = ::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string stat;
    std::getline(in, stat);
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 4 >= stat.size()) continue;
    // ") S PPID …"
    int ppid = ::atoi(stat.c_str() + close + 4);
    if (ppid == parent) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

}  // namespace

SshdServer::SshdServer() {
  const std::string& d = dir_.path();
  home_ = d + "/home";
  ::mkdir(home_.c_str(), 0700);
  keygen(d + "/host_key");
  keygen(d + "/client_key");
  client_key_ = d + "/client_key";
  ::rename((d + "/client_key.pub").c_str(), (d + "/authorized_keys").c_str());
  port_ = free_port();
  std::string host_pub = first_line(read_file(d + "/host_key.pub"));
  // "ssh-ed25519 AAAA… comment" → the type and the key.
  host_pub = host_pub.substr(0, host_pub.rfind(' '));
  known_hosts_ =
      dir_.write("known_hosts", "[127.0.0.1]:" + std::to_string(port_) + " " + host_pub + "\n");
  config_ = dir_.write(
      "sshd_config", "Port " + std::to_string(port_) + "\nListenAddress 127.0.0.1\nHostKey " + d +
                         "/host_key\nPidFile " + d + "/sshd.pid\nAuthorizedKeysFile " + d +
                         "/authorized_keys\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
                         "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
                         "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
                         "AllowTcpForwarding no\nX11Forwarding no\nPrintMotd no\nLogLevel VERBOSE\n"
                         "MaxStartups 50\nMaxSessions 50\n");
}

SshdServer::~SshdServer() {
  stop();
}

std::string SshdServer::user() const {
  passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? pw->pw_name : "root";
}

void SshdServer::start() {
  // As root, sshd wants its privilege-separation folder (made by the package's service).
  if (::geteuid() == 0) ::mkdir("/run/sshd", 0755);
  pid_ = start_command({kSshd, "-D", "-e", "-f", config_}, dir_.path() + "/sshd.out",
                       dir_.path() + "/sshd.log");
  if (!wait_until([&] { return accepts(port_); }, std::chrono::seconds(10))) {
    std::string text = log();
    stop();
    throw std::runtime_error("sshd did not start: " + text);
  }
}

void SshdServer::stop() {
  if (pid_ <= 0) return;
  for (pid_t c : children_of(pid_)) ::kill(c, SIGKILL);
  ::kill(pid_, SIGTERM);
  if (wait_command(pid_, std::chrono::seconds(5)) == -1) ::kill(pid_, SIGKILL);
  pid_ = -1;
}

int SshdServer::kill_sessions() {
  int n = 0;
  for (pid_t c : children_of(pid_)) {
    // A session's sshd and, under it, its own children (the privilege-separated one).
    for (pid_t g : children_of(c)) ::kill(g, SIGKILL);
    if (::kill(c, SIGKILL) == 0) ++n;
  }
  return n;
}

std::string SshdServer::add_client_key(const std::string& passphrase) {
  std::string key = dir_.path() + "/client_key_" + std::to_string(++extra_keys_);
  keygen(key, passphrase);
  std::ofstream(dir_.path() + "/authorized_keys", std::ios::app) << read_file(key + ".pub");
  return key;
}

std::string SshdServer::wrong_known_hosts() const {
  std::string other = dir_.path() + "/other_host_key";
  if (::access(other.c_str(), F_OK) != 0) keygen(other);
  std::string pub = first_line(read_file(other + ".pub"));
  pub = pub.substr(0, pub.rfind(' '));
  return dir_.write("wrong_known_hosts", "[127.0.0.1]:" + std::to_string(port_) + " " + pub + "\n");
}

std::string SshdServer::log() const {
  return read_file(dir_.path() + "/sshd.log");
}

DroppingProxy::DroppingProxy(int target_port) : target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    throw std::runtime_error("proxy: cannot listen");
  }
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("proxy: pipe");
  thread_ = std::thread([this] { run(); });
}

DroppingProxy::~DroppingProxy() {
  stop_.store(true);
  (void)!::write(wake_[1], "x", 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void DroppingProxy::run() {
  struct Link {
    int client, server;
  };
  std::vector<Link> links;
  auto close_link = [&](size_t i) {
    ::close(links[i].client);
    ::close(links[i].server);
    links.erase(links.begin() + long(i));
  };
  char buf[16384];
  while (!stop_.load()) {
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (auto& l : links) {
      fds.push_back({l.client, POLLIN, 0});
      fds.push_back({l.server, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) <= 0) continue;
    if (fds[1].revents & POLLIN) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(uint16_t(target_port_));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
          links.push_back({c, s});
        } else {
          ::close(c);
          ::close(s);
        }
      }
    }
    // Links from the poll set only (new ones are polled next round).
    size_t polled = (fds.size() - 2) / 2;
    for (size_t i = polled; i-- > 0;) {
      bool dead = false;
      for (int side = 0; side < 2 && !dead; ++side) {
        const pollfd& p = fds[2 + 2 * i + size_t(side)];
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        int from = side == 0 ? links[i].client : links[i].server;
        int to = side == 0 ? links[i].server : links[i].client;
        ssize_t n = ::read(from, buf, sizeof buf);
        if (n <= 0) {
          dead = true;
          break;
        }
        if (side == 0) {
          client_bytes_ += n;
          int64_t left = drop_after_.load();
          if (left >= 0) {
            if (n >= left) {
              if (left > 0) (void)!::write(to, buf, size_t(left));
              drop_after_.store(-1);
              ++drops_;
              // RST, not FIN: the peers see the connection die.
              linger lg{1, 0};
              ::setsockopt(links[i].client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
              ::setsockopt(links[i].server, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
              dead = true;
              break;
            }
            drop_after_.store(left - n);
          }
        }
        for (ssize_t done = 0; done < n;) {
          ssize_t w = ::write(to, buf + done, size_t(n - done));
          if (w <= 0) {
            dead = true;
            break;
          }
          done += w;
        }
      }
      if (dead) close_link(i);
    }
  }
  while (!links.empty()) close_link(0);
}

}  // namespace relais::testing
