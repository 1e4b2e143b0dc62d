#pragma once
// A small SMTP listener for tests: accepts connections on 127.0.0.1 (a free port), speaks enough
// of RFC 5321 for a client that sends mail (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and
// keeps every message received. Strict: commands out of order get 503, unknown ones 500.
// Thread-safe accessors; owns its thread and socket (stopped by the destructor).

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace relais::testing {

struct SmtpMessage {
  std::string from;
  std::vector<std::string> to;
  std::string data;  // headers and body, dot-unstuffed, without the final "."
};

class SmtpListener {
 public:
  SmtpListener() : socket_(Poco::Net::SocketAddress("127.0.0.1", 0)) {
    socket_.setReceiveTimeout(Poco::Timespan(0, 100000));
    thread_ = std::thread([this] { run(); });
  }
  ~SmtpListener() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return socket_.address().port(); }
  std::vector<SmtpMessage> messages() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

 private:
  static bool read_line(Poco::Net::StreamSocket& s, std::string& buf, std::string& line) {
    for (;;) {
      auto p = buf.find("\r\n");
      if (p != std::string::npos) {
        line = buf.substr(0, p);
        buf.erase(0, p + 2);
        return true;
      }
      char tmp[4096];
      int n = 0;
      try {
        n = s.receiveBytes(tmp, sizeof tmp);
      } catch (const Poco::Exception&) {
        return false;
      }
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
    }
  }
  static void say(Poco::Net::StreamSocket& s, const std::string& line) {
    std::string out = line + "\r\n";
    s.sendBytes(out.data(), static_cast<int>(out.size()));
  }
  void serve(Poco::Net::StreamSocket s) {
    s.setReceiveTimeout(Poco::Timespan(10, 0));
    std::string buf, line;
    say(s, "220 relais-test-smtp ESMTP");
    bool hello = false;
    SmtpMessage m;
    while (read_line(s, buf, line)) {
      std::string verb = line.substr(0, 4);
      for (auto& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (verb == "EHLO" || verb == "HELO") {
        hello = true;
        say(s, verb == "EHLO" ? "250-relais-test-smtp\r\n250 8BITMIME" : "250 relais-test-smtp");
      } else if (verb == "MAIL") {
        if (!hello) {
          say(s, "503 say hello first");
          continue;
        }
        m = SmtpMessage{};
        m.from = line.substr(line.find(':') + 1);
        say(s, "250 OK");
      } else if (verb == "RCPT") {
        if (m.from.empty()) {
          say(s, "503 need MAIL first");
          continue;
        }
        m.to.push_back(line.substr(line.find(':') + 1));
        say(s, "250 OK");
      } else if (verb == "DATA") {
        if (m.to.empty()) {
          say(s, "503 need RCPT first");
          continue;
        }
        say(s, "354 end with <CRLF>.<CRLF>");
        std::string data;
        while (read_line(s, buf, line) && line != ".") {
          data += (line.rfind("..", 0) == 0 ? line.substr(1) : line) + "\r\n";
        }
        m.data = data;
        {
          std::lock_guard<std::mutex> lock(mu_);
          messages_.push_back(m);
        }
        m = SmtpMessage{};
        say(s, "250 queued");
      } else if (verb == "RSET" || verb == "NOOP") {
        say(s, "250 OK");
      } else if (verb == "QUIT") {
        say(s, "221 bye");
        return;
      } else {
        say(s, "500 unknown command");
      }
    }
  }
  void run() {
    while (!stop_) {
      try {
        if (!socket_.poll(Poco::Timespan(0, 100000), Poco::Net::Socket::SELECT_READ)) continue;
        serve(socket_.acceptConnection());
      } catch (const Poco::Exception&) {
      }
    }
  }

  Poco::Net::ServerSocket socket_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<SmtpMessage> messages_;
  std::thread thread_;
};

}  // namespace relais::testing
