#include "tests/sms/kannel_gateway.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace relais::testing {
namespace {
constexpr const char* kBearerbox = "/usr/sbin/bearerbox";
constexpr const char* kSmsbox = "/usr/sbin/smsbox";
constexpr const char* kFakesmsc = "/usr/lib/kannel/test/fakesmsc";
}  // namespace

KannelGateway::KannelGateway(KannelOptions options) : options_(std::move(options)) {
  admin_port_ = free_port();
  smsbox_port_ = free_port();
  smsc_port_ = free_port();
  sendsms_port_ = free_port();
  std::string d = dir_.path();
  std::string c;
  c += "group = core\nadmin-port = " + std::to_string(admin_port_) +
       "\nadmin-password = kannel-admin\nadmin-allow-ip = \"127.0.0.1\"\n"
       "smsbox-port = " +
       std::to_string(smsbox_port_) + "\nbox-allow-ip = \"127.0.0.1\"\nlog-file = \"" + d +
       "/bearerbox.log\"\n"
       "log-level = 1\ndlr-storage = internal\n\n";
  c += "group = smsc\nsmsc = fake\nsmsc-id = fake\nport = " + std::to_string(smsc_port_) +
       "\nconnect-allow-ip = \"127.0.0.1\"\n\n";
  c += "group = smsbox\nbearerbox-host = 127.0.0.1\nbearerbox-port = " +
       std::to_string(smsbox_port_) + "\nsendsms-port = " + std::to_string(sendsms_port_) +
       "\nsendsms-interface = 127.0.0.1\nlog-file = \"" + d +
       "/smsbox.log\"\nlog-level = 1\nhttp-request-retry = " +
       std::to_string(options_.http_request_retry) +
       "\nhttp-queue-delay = " + std::to_string(options_.http_queue_delay_s) + "\n\n";
  c += "group = sendsms-user\nusername = " + options_.sendsms_user +
       "\npassword = " + options_.sendsms_password +
       "\nconcatenation = true\nmax-messages = 10\n\n";
  if (!options_.mo_url.empty()) {
    // max-messages = 0: relais's answer is not sent back to the phone.
    c += "group = sms-service\nkeyword = default\nget-url = \"" + options_.mo_url +
         "\"\nmax-messages = 0\ncatch-all = true\n\n";
  }
  conf_ = dir_.write("kannel.conf", c);
}

KannelGateway::~KannelGateway() {
  stop();
}

std::string KannelGateway::sendsms_url() const {
  return "http://127.0.0.1:" + std::to_string(sendsms_port_) + "/cgi-bin/sendsms";
}

pid_t KannelGateway::spawn(const std::vector<std::string>& argv, const std::string& log,
                           int stdin_fd) {
  if (::access(argv[0].c_str(), X_OK) != 0) {
    throw std::runtime_error(argv[0] +
                             " is missing: install kannel and kannel-extras "
                             "(scripts/install-deps.sh)");
  }
  std::string out = dir_.path() + "/" + log;
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE* f = std::freopen(out.c_str(), "a", stdout);
    (void)f;
    ::dup2(STDOUT_FILENO, STDERR_FILENO);
    if (stdin_fd >= 0) ::dup2(stdin_fd, STDIN_FILENO);
    if (::chdir(dir_.path().c_str()) != 0) ::_exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

void KannelGateway::end(pid_t& pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid = -1;
}

std::string KannelGateway::smsbox_log() const {
  return read_file(dir_.path() + "/smsbox.log");
}

bool KannelGateway::log_contains(const std::string& file, const std::string& text,
                                 size_t from) const {
  std::string all = read_file(dir_.path() + "/" + file);
  return all.size() > from && all.find(text, from) != std::string::npos;
}

void KannelGateway::start() {
  std::string log = dir_.path() + "/bearerbox.log";
  bearerbox_ = spawn({kBearerbox, conf_}, "bearerbox.out");
  if (!wait_until([&] { return log_contains("bearerbox.log", "MAIN: Start-up done"); },
                  std::chrono::seconds(20))) {
    throw std::runtime_error("bearerbox did not start: " + read_file(log) +
                             read_file(dir_.path() + "/bearerbox.out"));
  }
  start_smsbox();
  start_fakesmsc();
}

void KannelGateway::start_smsbox() {
  size_t from = read_file(dir_.path() + "/smsbox.log").size();
  smsbox_ = spawn({kSmsbox, conf_}, "smsbox.out");
  // Ready when sendsms answers (any HTTP status).
  HttpClient probe;
  probe.set_timeout_ms(1000);
  if (!wait_until([&] { return probe.get(sendsms_url()).status != 0; }, std::chrono::seconds(20),
                  std::chrono::milliseconds(100))) {
    throw std::runtime_error("smsbox did not start: " +
                             read_file(dir_.path() + "/smsbox.log").substr(from));
  }
}

void KannelGateway::stop_smsbox() {
  end(smsbox_);
}

void KannelGateway::start_fakesmsc(const std::string& mo) {
  // bearerbox logs each fake SMSC connection; count them to see this one arrive.
  auto connections = [&] {
    std::string all = read_file(dir_.path() + "/bearerbox.log");
    int n = 0;
    for (size_t p = all.find("Fakesmsc client connected"); p != std::string::npos;
         p = all.find("Fakesmsc client connected", p + 1)) {
      ++n;
    }
    return n;
  };
  int before = connections();
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> argv = {
      kFakesmsc, "-H", "127.0.0.1", "-r", std::to_string(smsc_port_), "-m", mo.empty() ? "0" : "1"};
  if (!mo.empty()) argv.push_back(mo);
  fakesmsc_ = spawn(argv, "fakesmsc-" + std::to_string(++fakesmsc_runs_) + ".out", fds[0]);
  ::close(fds[0]);
  fakesmsc_stdin_ = fds[1];  // an open stdin keeps the interactive fake SMSC running
  if (!wait_until([&] { return connections() > before; }, std::chrono::seconds(20))) {
    throw std::runtime_error("the fake SMSC did not connect to bearerbox");
  }
}

void KannelGateway::stop_fakesmsc() {
  end(fakesmsc_);
  if (fakesmsc_stdin_ >= 0) ::close(fakesmsc_stdin_);
  fakesmsc_stdin_ = -1;
}

void KannelGateway::stop() {
  stop_fakesmsc();
  end(smsbox_);
  end(bearerbox_);
}

std::string KannelGateway::fakesmsc_output() const {
  std::string all;
  for (int i = 1; i <= fakesmsc_runs_; ++i) {
    all += read_file(dir_.path() + "/fakesmsc-" + std::to_string(i) + ".out");
  }
  return all;
}

namespace {
std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}
}  // namespace

std::vector<std::string> KannelGateway::messages() const {
  // "Got message N: <FROM TO text WORDS>" or "<FROM TO udh UDH data PART>" (URL-encoded): the
  // parts of one SMS share the UDH's reference byte and carry their index and count.
  std::vector<std::string> out;
  std::map<std::string, std::string> partial;  // "to/ref" -> text so far
  std::string all = fakesmsc_output();
  for (size_t p = all.find("Got message"); p != std::string::npos;
       p = all.find("Got message", p + 1)) {
    size_t b = all.find('<', p), e = all.find(">\n", p);
    if (b == std::string::npos || e == std::string::npos) break;
    std::istringstream in(all.substr(b + 1, e - b - 1));
    std::string from, to, type;
    in >> from >> to >> type;
    std::string rest;
    std::getline(in, rest);
    if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
    if (type == "text") {
      out.push_back(rest);
    } else if (type == "data") {
      out.push_back(url_decode(rest));
    } else if (type == "udh") {
      size_t sp = rest.find(' ');
      std::string udh = url_decode(rest.substr(0, sp));
      std::string data = rest.substr(sp + 1);
      data = url_decode(data.substr(data.find(' ') + 1));  // after "data"
      if (udh.size() < 6) continue;
      std::string key = to + "/" + std::to_string(static_cast<unsigned char>(udh[3]));
      partial[key] += data;
      if (static_cast<unsigned char>(udh[5]) == static_cast<unsigned char>(udh[4])) {
        out.push_back(partial[key]);
        partial.erase(key);
      }
    }
  }
  return out;
}

int KannelGateway::received() const {
  return static_cast<int>(messages().size());
}

}  // namespace relais::testing
