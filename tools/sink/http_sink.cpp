#include "tools/sink/http_sink.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>

#include <algorithm>
#include <chrono>
#include <sstream>

namespace relais::tools {
namespace {

class SinkHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit SinkHandler(HttpSink& sink) : sink_(sink) {}
  void handleRequest(Poco::Net::HTTPServerRequest& req,
                     Poco::Net::HTTPServerResponse& resp) override {
    SinkRequest r;
    r.method = req.getMethod();
    r.path = req.getURI();
    for (const auto& [k, v] : req) {
      std::string name = k;
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      r.headers[name] = v;
    }
    // A body cut short (the client's connection died while sending it) is no request: it is
    // neither counted nor answered, as a real partner would not act on it.
    try {
      Poco::StreamCopier::copyToString(req.stream(), r.body);
    } catch (const Poco::Exception&) {
      resp.setKeepAlive(false);
      return;
    }
    if (!req.stream().eof() || (req.hasContentLength() && static_cast<Poco::Int64>(r.body.size()) !=
                                                              req.getContentLength64())) {
      resp.setKeepAlive(false);
      return;
    }
    auto& impl = static_cast<Poco::Net::HTTPServerRequestImpl&>(req);
    std::ostringstream id;
    id << static_cast<const void*>(&impl.session()) << ' ' << req.clientAddress().toString();
    r.reused = sink_.note_connection(id.str());
    SinkResponse out = sink_.handle(std::move(r));
    if (out.reset) {
      // No answer at all: the connection goes down under the client's feet.
      resp.setKeepAlive(false);
      impl.socket().shutdown();
      return;
    }
    resp.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(out.status));
    for (const auto& [k, v] : out.headers) resp.set(k, v);
    resp.setContentType("application/json");
    resp.setContentLength(static_cast<std::streamsize>(out.body.size()));
    resp.send() << out.body;
  }

 private:
  HttpSink& sink_;
};

class SinkFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit SinkFactory(HttpSink& sink) : sink_(sink) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new SinkHandler(sink_);
  }

 private:
  HttpSink& sink_;
};

}  // namespace

HttpSink::HttpSink(int port, bool keep_bodies, int threads) : keep_bodies_(keep_bodies) {
  Poco::Net::ServerSocket socket(
      Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(port)), 256);
  port_ = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(threads);
  params->setMaxQueued(1024);
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);
  server_ = std::make_unique<Poco::Net::HTTPServer>(new SinkFactory(*this), socket, params);
  server_->start();
}

HttpSink::~HttpSink() {
  if (server_) server_->stopAll(true);
  // stopAll does not wait for handlers still answering: wait until none touches *this.
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return in_flight_ == 0; });
}

void HttpSink::set_responder(Responder r) {
  std::lock_guard<std::mutex> lock(mu_);
  responder_ = std::move(r);
}

SinkResponse HttpSink::handle(SinkRequest&& request) {
  Responder r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    r = responder_;
    ++in_flight_;
  }
  SinkResponse out = r ? r(request) : SinkResponse{};
  total_.fetch_add(1);
  if (out.status >= 200 && out.status < 300) {
    std::lock_guard<std::mutex> lock(mu_);
    if (keep_bodies_) requests_.push_back(std::move(request));
    count_.fetch_add(1);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
  }
  cv_.notify_all();
  return out;
}

bool HttpSink::note_connection(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return served_[id]++ > 0;
}

std::vector<SinkRequest> HttpSink::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t HttpSink::wait_for(size_t n, int timeout_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return count_.load() >= n; });
  return count_.load();
}

void HttpSink::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  requests_.clear();
  count_ = 0;
  total_ = 0;
}

}  // namespace relais::tools
