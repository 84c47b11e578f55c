#include "common/http_server.h"

#include <pthread.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <future>
#include <list>
#include <sstream>
#include <vector>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace barrage {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
// Events queued for one slow client before it is dropped (a page in a
// background tab that stopped reading must not grow the controller).
constexpr size_t kMaxQueuedEvents = 256;
// Request headers and bodies beyond this are refused (GETs carry none).
constexpr uint32_t kMaxRequestBytes = 16 << 10;
}  // namespace

class HttpServer::Impl : public std::enable_shared_from_this<HttpServer::Impl> {
 public:
  struct Subscriber {
    tcp::socket socket;
    std::deque<std::string> queue;
    bool writing = false;
    explicit Subscriber(tcp::socket s) : socket(std::move(s)) {}
  };

  Impl(Handler handler, OnSubscribe on_subscribe)
      : handler_(std::move(handler)), on_subscribe_(std::move(on_subscribe)), acceptor_(io_) {}

  absl::Status Bind(const std::string& address) {
    const size_t colon = address.rfind(':');
    std::string host = address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string port = address.substr(colon + 1);
    boost::system::error_code ec;
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(host, port, tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot listen on ", address, ": ", ec ? ec.message() : "no address"));
    }
    const tcp::endpoint endpoint = results.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", address, " (address in use or invalid): ", ec.message()));
    }
    const tcp::endpoint bound = acceptor_.local_endpoint();
    const std::string ip = bound.address().to_string();
    address_ = absl::StrCat(bound.address().is_v6() ? absl::StrCat("[", ip, "]") : ip, ":", bound.port());
    return absl::OkStatus();
  }

  void Run() {
    Accept();
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), thread_name_.substr(0, 15).c_str());
      io_.run();
      finished_ = true;
    });
  }

  void Accept() {
    acceptor_.async_accept([self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;  // closed by Stop
      auto c = std::make_shared<Connection>(self, std::move(socket));
      self->connections_.remove_if([](const std::weak_ptr<Connection>& w) { return w.expired(); });
      self->connections_.push_back(c);
      c->Read();
      self->Accept();
    });
  }

  // One keep-alive HTTP connection, until it asks for /events.
  struct Connection : std::enable_shared_from_this<Connection> {
    std::shared_ptr<Impl> server;
    tcp::socket socket;
    beast::flat_buffer buffer;
    std::unique_ptr<http::request_parser<http::empty_body>> parser;
    http::response<http::string_body> response;
    std::string header;                              // for shared_body responses
    std::shared_ptr<const std::string> shared_body;  // held until written
    bool keep_alive = false;

    Connection(std::shared_ptr<Impl> s, tcp::socket sock) : server(std::move(s)), socket(std::move(sock)) {}

    void Read() {
      if (server->stopping_) return;
      parser = std::make_unique<http::request_parser<http::empty_body>>();
      parser->header_limit(kMaxRequestBytes);
      parser->body_limit(kMaxRequestBytes);
      http::async_read(socket, buffer, *parser, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return;
        self->Serve();
      });
    }

    void Serve() {
      const auto& req = parser->get();
      const std::string target(req.target());
      const bool head_only = req.method() == http::verb::head;
      if (server->on_subscribe_ && req.method() == http::verb::get &&
          (target == "/events" || target.rfind("/events?", 0) == 0)) {
        server->Subscribe(std::move(socket));
        return;
      }
      HttpResponse r;
      if (req.method() != http::verb::get && !head_only) {
        r = {405, "text/plain; charset=utf-8", "only GET\n"};
      } else {
        r = server->handler_(target);
      }
      if (r.shared_body) {
        // The header by Beast, the body straight from the shared buffer.
        http::response<http::empty_body> head(static_cast<http::status>(r.status), req.version());
        head.set(http::field::content_type, r.content_type);
        head.set(http::field::cache_control, "no-store");
        head.keep_alive(req.keep_alive());
        head.content_length(r.shared_body->size());
        std::ostringstream text;
        text << head.base();
        header = text.str();
        shared_body = head_only ? nullptr : std::move(r.shared_body);
        keep_alive = req.keep_alive();
        std::vector<asio::const_buffer> buffers{asio::buffer(header)};
        if (shared_body) buffers.push_back(asio::buffer(*shared_body));
        asio::async_write(socket, buffers, [self = shared_from_this()](boost::system::error_code ec, size_t) {
          self->shared_body.reset();
          self->Done(ec, self->keep_alive);
        });
        return;
      }
      response = http::response<http::string_body>(static_cast<http::status>(r.status), req.version());
      response.set(http::field::content_type, r.content_type);
      response.set(http::field::cache_control, "no-store");
      response.keep_alive(req.keep_alive());
      response.body() = head_only ? std::string() : std::move(r.body);
      response.prepare_payload();
      if (head_only) response.content_length(r.body.size());
      http::async_write(socket, response, [self = shared_from_this()](beast::error_code ec, size_t) {
        self->Done(ec, self->response.keep_alive());
      });
    }

    void Done(boost::system::error_code ec, bool keep_alive) {
      if (ec || !keep_alive) {
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        return;
      }
      Read();
    }
  };

  void Subscribe(tcp::socket socket) {
    auto sub = std::make_shared<Subscriber>(std::move(socket));
    sub->queue.push_back(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
        "Connection: keep-alive\r\n\r\n");
    sub->queue.push_back(Frame("snapshot", on_subscribe_()));
    subscribers_.push_back(sub);
    count_ = subscribers_.size();
    Write(sub);
  }

  static std::string Frame(const std::string& event, const std::string& data) {
    return absl::StrCat("event: ", event, "\ndata: ", data, "\n\n");
  }

  void Write(const std::shared_ptr<Subscriber>& sub) {
    if (sub->writing || sub->queue.empty()) return;
    sub->writing = true;
    asio::async_write(sub->socket, asio::buffer(sub->queue.front()),
                      [self = shared_from_this(), sub](boost::system::error_code ec, size_t) {
                        sub->writing = false;
                        if (ec) {
                          self->Drop(sub);
                          return;
                        }
                        sub->queue.pop_front();
                        self->Write(sub);
                      });
  }

  void Drop(const std::shared_ptr<Subscriber>& sub) {
    boost::system::error_code ignored;
    sub->socket.close(ignored);
    subscribers_.remove(sub);
    count_ = subscribers_.size();
  }

  void Broadcast(const std::string& event, const std::string& data) {
    asio::post(io_, [self = shared_from_this(), frame = Frame(event, data)] {
      std::vector<std::shared_ptr<Subscriber>> slow;
      for (const auto& sub : self->subscribers_) {
        if (sub->queue.size() >= kMaxQueuedEvents) {
          slow.push_back(sub);
          continue;
        }
        sub->queue.push_back(frame);
        self->Write(sub);
      }
      for (const auto& sub : slow) self->Drop(sub);
    });
  }

  bool Drained() {
    auto p = std::make_shared<std::promise<bool>>();
    std::future<bool> f = p->get_future();
    asio::post(io_, [self = shared_from_this(), p] {
      bool empty = true;
      for (const auto& sub : self->subscribers_) empty = empty && sub->queue.empty();
      p->set_value(empty);
    });
    return f.wait_for(std::chrono::milliseconds(500)) == std::future_status::ready && f.get();
  }

  void Stop(absl::Duration drain) {
    if (stopped_.exchange(true)) return;
    stopping_ = true;
    asio::post(io_, [self = shared_from_this()] {
      boost::system::error_code ignored;
      self->acceptor_.close(ignored);
    });
    const absl::Time until = absl::Now() + drain;
    while (absl::Now() < until && !Drained()) absl::SleepFor(absl::Milliseconds(20));
    asio::post(io_, [self = shared_from_this()] {
      boost::system::error_code ignored;
      for (const auto& sub : self->subscribers_) {
        sub->socket.shutdown(tcp::socket::shutdown_both, ignored);
        sub->socket.close(ignored);
      }
      self->subscribers_.clear();
      self->count_ = 0;
      for (const auto& weak : self->connections_) {
        if (auto c = weak.lock()) c->socket.close(ignored);
      }
      self->connections_.clear();
    });
    // With every socket closed the loop runs out of work and returns; a
    // handler that does not is cut off after a second.
    const absl::Time give_up = absl::Now() + absl::Seconds(1);
    while (!finished_ && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(10));
    io_.stop();
    if (thread_.joinable()) thread_.join();
    // Completion handlers still queued hold references to this object.
    io_.restart();
    io_.poll();
  }

  Handler handler_;
  OnSubscribe on_subscribe_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::string address_;
  std::string thread_name_;
  std::thread thread_;
  std::list<std::shared_ptr<Subscriber>> subscribers_;  // the server's thread only
  std::atomic<size_t> count_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> finished_{false};
  std::list<std::weak_ptr<Connection>> connections_;  // the server's thread only
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address, Handler handler,
                                                              OnSubscribe on_subscribe, const std::string& thread_name) {
  auto impl = std::make_shared<Impl>(std::move(handler), std::move(on_subscribe));
  impl->thread_name_ = thread_name;
  if (absl::Status st = impl->Bind(address); !st.ok()) return st;
  impl->Run();
  std::unique_ptr<HttpServer> out(new HttpServer());
  out->impl_ = std::move(impl);
  return out;
}

HttpServer::~HttpServer() {
  if (impl_) impl_->Stop(absl::ZeroDuration());
}

std::string HttpServer::address() const { return impl_->address_; }

void HttpServer::Broadcast(const std::string& event, const std::string& data) { impl_->Broadcast(event, data); }

void HttpServer::Stop(absl::Duration drain) { impl_->Stop(drain); }

size_t HttpServer::subscribers() const { return impl_->count_; }

}  // namespace barrage
