// relais-sandbox: the demo's stand-in destination. Listens on 127.0.0.1:PORT, answers 200 to
// every request and prints one line per request (type and ids only, never the body).
// Demo only: relais never uses it.

#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "tools/sink/http_sink.h"

int main(int argc, char** argv) {
  int port = argc > 1 ? std::atoi(argv[1]) : 8089;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::mutex out_mu;
  relais::tools::HttpSink sink(port, false, 8);
  sink.set_responder([&](const relais::tools::SinkRequest& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    // The raw CMS76 event says "event"; a mapped calendar payload says "action".
    std::string event = "?";
    for (const char* key : {"event", "action"}) {
      if (j.is_object() && j.contains(key) && j[key].is_string()) {
        event = std::string(key) + "=" + j[key].get<std::string>();
        break;
      }
    }
    auto id = r.headers.count("x-relais-message-id") ? r.headers.at("x-relais-message-id") : "";
    std::lock_guard<std::mutex> lock(out_mu);
    std::cout << "sandbox: received " << r.method << " " << r.path << " " << event
              << " message=" << id << " (" << r.body.size() << " bytes)" << std::endl;
    relais::tools::SinkResponse resp;
    resp.headers["Location"] = "/sandbox/items/" + id;
    return resp;
  });
  std::cout << "sandbox: listening on http://127.0.0.1:" << sink.port() << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  std::cout << "sandbox: stopping" << std::endl;
  return 0;
}
