// Boost.Beast transport for the KServe v2 REST API: accept loop, one
// Connection per socket (header, optional 100-continue, body, reply, repeat
// while keep-alive), and the thread pool running the io_context.
#include "serving/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "serving/json_codec.h"

namespace hearth::serving {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const RestApi& api, const HttpServerOptions& options)
      : stream_(std::move(socket)), api_(api), options_(options) {}

  void start() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Connection::read, shared_from_this())); }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(options_.body_limit);
    stream_.expires_after(std::chrono::seconds(options_.idle_timeout_seconds));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Connection::on_header, shared_from_this()));
  }

  // Turns a read error into a reply (413, 400) or a quiet close.
  void on_read_error(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return reply_and_close(413, str_cat("request body exceeds the limit of ", options_.body_limit, " bytes"));
    }
    if (ec.category() == beast::error_code(http::error::end_of_stream).category() &&
        ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      return reply_and_close(400, str_cat("malformed HTTP request: ", ec.message()));
    }
    close();  // end of stream, timeout, reset: nothing to answer
  }

  void on_header(beast::error_code ec, size_t) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      continue_ = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *continue_, [self = shared_from_this()](beast::error_code wec, size_t) {
        if (wec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Connection::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec) return on_read_error(ec);
    http::request<http::string_body> req = parser_->release();
    HttpReply reply = api_.handle(std::string(req.method_string()), std::string(req.target()), req.body());
    send(reply.status, std::move(reply.body), req.version(), req.keep_alive());
  }

  void send(int status, std::string body, unsigned version, bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->result(static_cast<unsigned>(status));
    res->version(version);
    res->set(http::field::server, "hearth");
    if (!body.empty()) res->set(http::field::content_type, "application/json");
    res->body() = std::move(body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    stream_.expires_after(std::chrono::seconds(options_.idle_timeout_seconds));
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
      if (ec) return self->close();
      if (!keep_alive) return self->linger_close();
      self->read();
    });
  }

  void reply_and_close(int status, const std::string& message) {
    send(status, encode_error(message), 11, false);
  }

  // Half-closes, then discards what the client still sends (e.g. the rest of
  // an oversized body) for a moment, so it reads our reply instead of a reset.
  void linger_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(5));
    drain();
  }

  void drain() {
    if (!drain_buffer_) drain_buffer_ = std::make_unique<std::array<char, 65536>>();
    stream_.async_read_some(net::buffer(*drain_buffer_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->close();
      self->drain();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::empty_body>> continue_;
  std::unique_ptr<std::array<char, 65536>> drain_buffer_;
  const RestApi& api_;
  const HttpServerOptions& options_;
};

}  // namespace

struct HttpServer::Impl {
  Impl(const RestApi& a, HttpServerOptions o) : api(a), options(std::move(o)) {}

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) std::make_shared<Connection>(std::move(socket), api, options)->start();
      accept();
    });
  }

  void request_stop() {
    std::lock_guard<std::mutex> lock(mutex);
    stop_requested = true;
    cv.notify_all();
  }

  const RestApi& api;
  HttpServerOptions options;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::optional<net::signal_set> signals;
  std::vector<std::thread> threads;
  uint16_t bound_port = 0;
  std::mutex mutex;
  std::condition_variable cv;
  bool stop_requested = false;
  bool stopped = false;
};

HttpServer::HttpServer(const RestApi& api, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(api, std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  Impl& s = *impl_;
  beast::error_code ec;
  auto address = net::ip::make_address(s.options.address, ec);
  if (ec) return invalid_argument("bad --http-address '", s.options.address, "': ", ec.message());
  tcp::endpoint endpoint(address, s.options.port);
  auto where = str_cat(s.options.address, ":", s.options.port);
  if (s.acceptor.open(endpoint.protocol(), ec); ec) return internal_error("cannot open socket: ", ec.message());
  if (s.acceptor.set_option(net::socket_base::reuse_address(true), ec); ec)
    return internal_error("cannot set SO_REUSEADDR: ", ec.message());
  if (s.acceptor.bind(endpoint, ec); ec) return failed_precondition("cannot bind ", where, ": ", ec.message());
  if (s.acceptor.listen(net::socket_base::max_listen_connections, ec); ec)
    return failed_precondition("cannot listen on ", where, ": ", ec.message());
  s.bound_port = s.acceptor.local_endpoint(ec).port();
  try {
    s.signals.emplace(s.ioc, SIGINT, SIGTERM);
    s.signals->async_wait([&s](beast::error_code sec, int) {
      if (!sec) s.request_stop();
    });
    s.accept();
    int n = std::max(1, s.options.threads);
    for (int i = 0; i < n; ++i) {
      s.threads.emplace_back([&s] {
        for (;;) {
          try {
            s.ioc.run();
            return;
          } catch (...) {
            // A handler threw (should not happen); keep the thread serving.
          }
        }
      });
    }
  } catch (const std::exception& e) {
    return internal_error("cannot start the HTTP server: ", e.what());
  }
  return ok_status();
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::wait_for_signal() {
  {
    std::unique_lock<std::mutex> lock(impl_->mutex);
    impl_->cv.wait(lock, [this] { return impl_->stop_requested; });
  }
  stop();
}

void HttpServer::stop() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.stopped) return;
    s.stopped = true;
    s.stop_requested = true;
    s.cv.notify_all();
  }
  s.ioc.stop();
  for (std::thread& t : s.threads)
    if (t.joinable()) t.join();
  beast::error_code ec;
  s.acceptor.close(ec);
  if (s.signals) s.signals->cancel(ec);
}

}  // namespace hearth::serving
