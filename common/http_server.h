// A small HTTP server (the web dashboard, the Prometheus endpoint): plain GET
// routes and one server-sent-events stream (text/event-stream) that every
// connected page shares. Boost.Beast
// (header-only, beside Boost.Asio in Debian's libboost-dev) parses the
// requests; SSE framing is three lines of text, written on the socket
// directly (Beast has no SSE support). One thread runs it all.
#ifndef BARRAGE_COMMON_HTTP_SERVER_H_
#define BARRAGE_COMMON_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace barrage {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Instead of body: a buffer the server holds until it is sent (a large
  // page rendered into a reused buffer).
  std::shared_ptr<const std::string> shared_body;
};

class HttpServer {
 public:
  // A GET of `target` (path and query), on the server's thread.
  using Handler = std::function<HttpResponse(const std::string& target)>;
  // The first event a new /events client gets (the whole state so far).
  using OnSubscribe = std::function<std::string()>;

  // Binds at once: an address in use or invalid is an error naming it.
  // Without on_subscribe, /events is an ordinary route.
  // thread_name names the server's thread (ps, /proc: CPU per thread).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address, Handler handler,
                                                           OnSubscribe on_subscribe = nullptr,
                                                           const std::string& thread_name = "http");
  ~HttpServer();

  std::string address() const;  // the bound HOST:PORT
  // One SSE event ("event: <name>\ndata: <data>\n\n") to every /events
  // client; data must be one line (JSON). Thread-safe.
  void Broadcast(const std::string& event, const std::string& data);
  // Stops accepting, lets queued events reach the clients for up to
  // `drain`, then closes everything.
  void Stop(absl::Duration drain);
  size_t subscribers() const;

  class Impl;

 private:
  HttpServer() = default;
  std::shared_ptr<Impl> impl_;
};

}  // namespace barrage

#endif  // BARRAGE_COMMON_HTTP_SERVER_H_
