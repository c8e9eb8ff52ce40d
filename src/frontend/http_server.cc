// Boost.Beast transport for the KServe v2 REST API: accept loop, one
// Connection per socket (header, optional 100-continue, body, reply, repeat
// while keep-alive), and the thread pool running the io_context.
// Connection is a template over the stream: beast::tcp_stream for plain HTTP
// (the benchmarked path, unchanged) or beast::ssl_stream over it for HTTPS,
// which adds the handshake, the TLS close and a disconnect watch that cannot
// peek at encrypted bytes.
#include "frontend/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <poll.h>
#include <sys/socket.h>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "frontend/json_codec.h"
#include "telemetry/log.h"

namespace hearth::frontend {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr size_t kReadBuffer = 16 * 1024;      // per connection, between requests
constexpr size_t kBodyReadBuffer = 64 * 1024;  // Beast's largest single read

// Requests of this thread's connections handed to the model and not yet
// answered. Connections live on one thread, so no synchronisation is needed.
thread_local int t_requests_waiting = 0;

// Runs `ioc` until it stops, polling for up to `window` when it runs out of
// work instead of sleeping at once, as long as at least half of the recent idle
// gaps of the same kind ended within the window. Waking a sleeping thread costs
// tens of microseconds on a VM (an inter-processor interrupt and a task
// switch); a client on one keep-alive connection sends its next request that
// soon after each reply, and a fast model answers that soon. The two kinds of
// gap (waiting for clients, waiting for a model's answer) keep separate
// records, so a slow model stops the polling for its waits only. While not
// polling, the thread sleeps with a timeout of one window to learn whether
// work came within it. Each poll is one epoll_wait with a zero timeout.
void run_polling(net::io_context& ioc, std::chrono::microseconds window) {
  using Clock = std::chrono::steady_clock;
  // Shares of recent gaps that ended within the window, for client waits [0]
  // and model waits [1]. Polling starts on: while sleeping, a gap is scored by
  // the timed wait below, which sees work that arrives within the window.
  double hits[2] = {1, 1};
  while (!ioc.stopped()) {
    if (ioc.poll() > 0) continue;
    double& rate = hits[t_requests_waiting > 0 ? 1 : 0];
    const auto idle_since = Clock::now();
    bool hit = false;
    if (rate >= 0.5) {
      while (!hit && Clock::now() - idle_since < window && !ioc.stopped()) hit = ioc.poll() > 0;
    } else {
      hit = ioc.run_one_for(window) > 0;  // a handler ran: its work came within the window
    }
    if (!hit && ioc.run_one() == 0) break;  // stopped
    rate = 0.9 * rate + (hit ? 0.1 : 0.0);
  }
}

struct Shared {
  HttpHandler handler;
  HttpServerOptions options;
  std::atomic<size_t> connections{0};
  std::unique_ptr<net::ssl::context> tls;  // set when options.tls is enabled
};

// The peer's IP without the port; an IPv4-mapped IPv6 address as plain IPv4.
std::string peer_ip(const tcp::socket& socket) {
  beast::error_code ec;
  tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return "";
  net::ip::address a = peer.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).to_string();
  return a.to_string(ec);
}

using Clock = std::chrono::steady_clock;

// What the sweep of one io_context checks: a connection's deadline for the
// phase it is in (header, body, reply, lingering close).
class Expirable {
 public:
  virtual ~Expirable() = default;
  Clock::time_point deadline = Clock::time_point::max();  // max(): none
  virtual void expire() = 0;                               // past the deadline: close
};

// Timeouts without a timer per operation: Beast's tcp_stream::expires_after
// armed and cancelled a timer for every read and write (three per request,
// each a timer-queue update and often a timerfd_settime). Instead every
// connection keeps a deadline, and one timer per io_context closes those past
// it every kSweepPeriod. Everything here runs on that context's thread.
class Sweeper {
 public:
  static constexpr auto kSweepPeriod = std::chrono::milliseconds(200);

  explicit Sweeper(net::io_context& ioc) : timer_(ioc) {}
  void start() { arm(); }
  void add(std::weak_ptr<Expirable> c) { connections_.push_back(std::move(c)); }

 private:
  void arm() {
    timer_.expires_after(kSweepPeriod);
    timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      sweep();
      arm();
    });
  }
  void sweep() {
    const Clock::time_point now = Clock::now();
    size_t kept = 0;
    for (size_t i = 0; i < connections_.size(); ++i) {
      std::shared_ptr<Expirable> c = connections_[i].lock();
      if (!c) continue;  // closed and gone
      if (c->deadline <= now) {
        c->deadline = Clock::time_point::max();
        c->expire();
      }
      if (kept != i) connections_[kept] = std::move(connections_[i]);  // (a self-move would empty it)
      ++kept;
    }
    connections_.resize(kept);
  }

  net::steady_timer timer_;
  std::vector<std::weak_ptr<Expirable>> connections_;
};

template <class Stream>
class Connection : public Expirable, public std::enable_shared_from_this<Connection<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Connection(tcp::socket socket, std::string remote, std::shared_ptr<Shared> shared, Sweeper* sweeper)
      : stream_(make_stream(std::move(socket), *shared)),
        shared_(std::move(shared)),
        options_(shared_->options),
        remote_(std::move(remote)),
        sweeper_(sweeper) {
    over_limit_ = shared_->connections.fetch_add(1) >= options_.max_connections;
  }
  ~Connection() { shared_->connections.fetch_sub(1); }

  void start() {
    net::dispatch(tcp_layer().get_executor(), [self = this->shared_from_this()] {
      self->sweeper_->add(self);
      if constexpr (kTls) {
        self->handshake();
      } else {
        self->begin();
      }
    });
  }

 private:
  static Stream make_stream(tcp::socket socket, Shared& shared) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *shared.tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(stream_); }

  void expire_in(Clock::duration d) { deadline = Clock::now() + d; }

  // The sweep found this connection past its deadline (slow or idle client,
  // stalled reader): closing the socket ends the pending operation with an
  // error, and its handler lets the connection go.
  void expire() override {
    timed_out_ = true;
    close();
  }
  tcp::socket& socket() { return tcp_layer().socket(); }

  void begin() {
    if (over_limit_)
      return reply_and_close(503, str_cat("too many connections (limit ", options_.max_connections, ")"));
    read();
  }

  // TLS only: the handshake, bounded like a request header.
  void handshake() {
    expire_in(std::chrono::seconds(options_.header_timeout_seconds));
    stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
      self->on_handshake(ec);
    });
  }

  void on_handshake(beast::error_code ec) {
    if constexpr (kTls) {
      if (ec) {
        auto& log = telemetry::Logger::global();
        if (log.enabled(telemetry::LogLevel::kDebug))
          log.log(telemetry::LogLevel::kDebug, "tls_handshake_failed",
                  {telemetry::field("server", options_.name), telemetry::field("remote", remote_),
                   telemetry::field("reason", timed_out_ ? std::string("timed out") : ec.message())});
        return close();
      }
      if (!options_.tls.client_ca_file.empty()) client_subject_ = verified_peer_subject(stream_.native_handle());
      begin();
    }
  }

  void read() {
    // Beast reads at most the buffer's free capacity (at least 512 bytes) per
    // call: an empty buffer read a 600 KB body in 512-byte pieces, a recvmsg
    // and an epoll_wait each (145 MB/s). A request of a few KiB now takes one read.
    if (buffer_.capacity() > kReadBuffer && buffer_.size() <= kReadBuffer) {
      beast::flat_buffer smaller;  // keeps bytes of a pipelined request already read
      smaller.reserve(kReadBuffer);
      smaller.commit(net::buffer_copy(smaller.prepare(buffer_.size()), buffer_.data()));
      buffer_ = std::move(smaller);
    }
    buffer_.reserve(kReadBuffer);
    parser_.emplace();
    parser_->body_limit(options_.body_limit);
    parser_->header_limit(static_cast<std::uint32_t>(std::min<size_t>(options_.header_limit, UINT32_MAX)));
    expire_in(std::chrono::seconds(options_.header_timeout_seconds));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Connection::on_header, this->shared_from_this()));
  }

  // Turns a read error into a reply (413, 431, 400) or a quiet close.
  void on_read_error(beast::error_code ec) {
    if (ec == http::error::body_limit)
      return reply_and_close(413, str_cat("request body exceeds the limit of ", options_.body_limit, " bytes"));
    if (ec == http::error::header_limit)
      return reply_and_close(431, str_cat("request header exceeds the limit of ", options_.header_limit, " bytes"));
    if (ec.category() == beast::error_code(http::error::end_of_stream).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message)
      return reply_and_close(400, str_cat("malformed HTTP request: ", ec.message()));
    close();  // end of stream, timeout (slow or idle client), reset: nothing to answer
  }

  void on_header(beast::error_code ec, size_t) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
    if (options_.header_check) {
      HttpRequest head;
      head.method = std::string(req.method_string());
      head.target = std::string(req.target());
      for (const auto& f : req) head.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      head.remote_address = remote_;
      if constexpr (kTls) head.client_cert_subject = client_subject_;
      std::optional<HttpReply> early;
      try {
        early = options_.header_check(head);
      } catch (const std::exception& e) {
        early = HttpReply{500, encode_error(str_cat("internal error: ", e.what()))};
      }
      if (early) return send(std::move(*early), req.version(), false);  // the body stays unread: close after
      principal_ = std::move(head.principal);
    }
    expire_in(std::chrono::seconds(options_.body_timeout_seconds));
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      continue_ = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *continue_, [self = this->shared_from_this()](beast::error_code wec, size_t) {
        if (wec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    // Large bodies: room for Beast's largest read (64 KiB) until this request is done.
    if (!parser_->is_done() && (parser_->chunked() || parser_->content_length().value_or(0) > kReadBuffer))
      buffer_.reserve(buffer_.size() + kBodyReadBuffer);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Connection::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec) return on_read_error(ec);
    if (!socket().is_open()) return;  // the sweep closed it after the read completed: nobody to answer
    http::request<http::string_body> req = parser_->release();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    for (const auto& f : req) request.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    request.body = std::move(req.body());
    request.cancelled = std::make_shared<std::atomic<bool>>(false);
    request.principal = std::move(principal_);
    request.remote_address = remote_;
    if constexpr (kTls) request.client_cert_subject = client_subject_;
    cancelled_ = request.cancelled;
    busy_ = true;
    ++t_requests_waiting;
    deadline = Clock::time_point::max();  // the model's time is bounded by the request timeout, not here
    watch();
    auto responder = [self = this->shared_from_this()](HttpReply reply) {
      net::post(self->tcp_layer().get_executor(),
                [self, reply = std::move(reply)]() mutable { self->on_reply(std::move(reply)); });
    };
    try {
      shared_->handler(std::move(request), std::move(responder));
    } catch (const std::exception& e) {
      on_reply(HttpReply{500, encode_error(str_cat("internal error: ", e.what()))});
    }
  }

  // While the handler works, wait for the socket to become readable: end of
  // stream then means the client went away, and its queued work is cancelled.
  // When bytes of a next request were already read, the client waits for
  // answers: a clean end of stream after them is a half-close, not a departure
  // (a reset still cancels).
  void watch() {
    socket().async_wait(tcp::socket::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec || !self->busy_) return;
      if constexpr (kTls) {
        self->check_tls_peer();
      } else {
        char c;
        ssize_t n = ::recv(self->socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 && self->buffer_.size() > 0) return;  // half-close after pipelined requests
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) self->cancel_request();
        // n > 0: a pipelined request waits; it is read after this reply.
      }
    });
  }

  // TLS: the readable bytes may be a close_notify alert or a pipelined
  // request (both encrypted), so ask the kernel whether the peer has also
  // shut its side; if not yet, look again shortly while the request runs.
  void check_tls_peer() {
    pollfd p{socket().native_handle(), POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0) {
      if (p.revents & (POLLHUP | POLLERR)) return cancel_request();
      if (p.revents & POLLRDHUP) {
        if (buffer_.size() > 0) return;  // half-close after pipelined requests: stop watching
        return cancel_request();
      }
    }
    if (!recheck_) recheck_.emplace(tcp_layer().get_executor());
    recheck_->expires_after(std::chrono::milliseconds(50));
    recheck_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec && self->busy_) self->check_tls_peer();
    });
  }

  void cancel_request() {
    if (cancelled_) cancelled_->store(true);
  }

  void on_reply(HttpReply reply) {
    if (!busy_) return;  // answered already
    busy_ = false;
    --t_requests_waiting;
    cancelled_.reset();
    beast::error_code ec;
    socket().cancel(ec);  // ends the watch
    if (recheck_) recheck_->cancel();
    send(std::move(reply), version_, keep_alive_);
  }

  void send(HttpReply reply, unsigned version, bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->result(static_cast<unsigned>(reply.status));
    res->version(version);
    res->set(http::field::server, "hearth");
    if (!reply.body.empty()) res->set(http::field::content_type, reply.content_type);
    for (auto& h : reply.headers) res->set(h.first, h.second);
    res->body() = std::move(reply.body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    expire_in(std::chrono::seconds(options_.body_timeout_seconds));
    http::async_write(stream_, *res, [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
      if (ec) return self->close();
      if (!keep_alive) return self->linger_close();
      self->read();
    });
  }

  void reply_and_close(int status, const std::string& message) {
    send(HttpReply{status, encode_error(message)}, 11, false);
  }

  // Half-closes, then discards what the client still sends (e.g. the rest of
  // an oversized body) for a moment, so it reads our reply instead of a reset.
  // TLS: sends close_notify; OpenSSL discards application data that arrives
  // while it waits for the client's close_notify.
  void linger_close() {
    expire_in(std::chrono::seconds(5));
    if constexpr (kTls) {
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->close(); });
    } else {
      beast::error_code ec;
      socket().shutdown(tcp::socket::shutdown_send, ec);
      drain();
    }
  }

  void drain() {
    if (!drain_buffer_) drain_buffer_ = std::make_unique<std::array<char, 65536>>();
    stream_.async_read_some(net::buffer(*drain_buffer_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  void close() {
    beast::error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::empty_body>> continue_;
  std::unique_ptr<std::array<char, 65536>> drain_buffer_;
  std::shared_ptr<Shared> shared_;
  const HttpServerOptions& options_;
  std::string remote_;          // peer IP
  std::string client_subject_;  // TLS with client CA: verified client certificate subject
  Sweeper* sweeper_;                          // of the io_context this connection lives on
  std::optional<net::steady_timer> recheck_;  // TLS disconnect watch
  std::shared_ptr<std::atomic<bool>> cancelled_;
  std::shared_ptr<const security::Principal> principal_;  // from the header check, for the request being read
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool busy_ = false;
  bool over_limit_ = false;
  bool timed_out_ = false;  // closed by the sweep (for the log)
};

}  // namespace

// One io_context per thread: a connection lives on one context for its whole
// life, so its handlers never need a strand and a reply posted from a model
// worker wakes exactly the thread that owns the connection.
struct HttpServer::Impl {
  Impl(HttpHandler h, HttpServerOptions o) : shared(std::make_shared<Shared>()) {
    shared->handler = std::move(h);
    shared->options = std::move(o);
    const int n = std::max(1, shared->options.threads);
    for (int i = 0; i < n; ++i) {
      contexts.push_back(std::make_unique<net::io_context>(1));
      guards.emplace_back(net::make_work_guard(*contexts.back()));
      sweepers.push_back(std::make_unique<Sweeper>(*contexts.back()));
    }
    acceptor.emplace(*contexts[0]);
  }

  void accept() {
    const size_t index = next_context++ % contexts.size();
    net::io_context& target = *contexts[index];
    Sweeper* sweeper = sweepers[index].get();
    acceptor->async_accept(target, [this, sweeper](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
      if (!ec) {
        beast::error_code opt_ec;  // replies go out at once, not held back by Nagle
        socket.set_option(tcp::no_delay(true), opt_ec);
        std::string remote = peer_ip(socket);
        if (shared->tls)
          std::make_shared<Connection<TlsStream>>(std::move(socket), std::move(remote), shared, sweeper)->start();
        else
          std::make_shared<Connection<PlainStream>>(std::move(socket), std::move(remote), shared, sweeper)->start();
      }
      accept();
    });
  }

  // With options.tls: the server's TLS context (files checked, errors name them).
  Status make_tls_context() {
    const TlsOptions& tls = shared->options.tls;
    if (!tls.enabled()) {
      if (!tls.key_file.empty() || !tls.client_ca_file.empty())
        return invalid_argument(shared->options.name, " server: TLS key or client CA given without a certificate");
      return ok_status();
    }
    try {
      auto context = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
      if (Status s = configure_tls_context(context->native_handle(), tls); !s.ok())
        return Status(s.code(), str_cat(shared->options.name, " server: ", s.message()));
      shared->tls = std::move(context);
    } catch (const std::exception& e) {
      return internal_error(shared->options.name, " server: cannot create the TLS context: ", e.what());
    }
    return ok_status();
  }

  std::shared_ptr<Shared> shared;
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::vector<std::unique_ptr<Sweeper>> sweepers;  // one per context, used on its thread only
  std::optional<tcp::acceptor> acceptor;
  size_t next_context = 0;  // touched only by the accept handler (context 0's thread)
  std::vector<std::thread> threads;
  uint16_t bound_port = 0;
  std::mutex mutex;
  bool stopped = false;
};

HttpServer::HttpServer(HttpHandler handler, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(handler), std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  Impl& s = *impl_;
  const HttpServerOptions& o = s.shared->options;
  beast::error_code ec;
  auto address = net::ip::make_address(o.address, ec);
  if (ec) return invalid_argument("bad ", o.name, " address '", o.address, "': ", ec.message());
  tcp::endpoint endpoint(address, o.port);
  auto where = str_cat(o.address, ":", o.port);
  HEARTH_RETURN_IF_ERROR(s.make_tls_context());
  tcp::acceptor& acceptor = *s.acceptor;
  if (acceptor.open(endpoint.protocol(), ec); ec) return internal_error("cannot open socket: ", ec.message());
  if (acceptor.set_option(net::socket_base::reuse_address(true), ec); ec)
    return internal_error("cannot set SO_REUSEADDR: ", ec.message());
  if (acceptor.bind(endpoint, ec); ec) return failed_precondition("cannot bind ", where, ": ", ec.message());
  if (acceptor.listen(net::socket_base::max_listen_connections, ec); ec)
    return failed_precondition("cannot listen on ", where, ": ", ec.message());
  s.bound_port = acceptor.local_endpoint(ec).port();
  try {
    s.accept();
    for (auto& sweeper : s.sweepers) sweeper->start();
    for (auto& context : s.contexts) {
      s.threads.emplace_back([ioc = context.get(), spin = o.busy_poll_us] {
        for (;;) {
          try {
            if (spin > 0) return run_polling(*ioc, std::chrono::microseconds(spin));
            ioc->run();
            return;
          } catch (...) {
            // A handler threw (should not happen); keep the thread serving.
          }
        }
      });
    }
  } catch (const std::exception& e) {
    return internal_error("cannot start the ", o.name, " server: ", e.what());
  }
  return ok_status();
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::stop() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.stopped) return;
    s.stopped = true;
  }
  for (auto& context : s.contexts) context->stop();
  for (std::thread& t : s.threads)
    if (t.joinable()) t.join();
  beast::error_code ec;
  s.acceptor->close(ec);
}

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& h : headers)
    if (beast::iequals(h.first, beast::string_view(name.data(), name.size()))) return h.second;
  return "";
}

}  // namespace hearth::frontend
