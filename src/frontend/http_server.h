// HttpServer: HTTP/1.1 with keep-alive on Boost.Beast, answering each request
// through an asynchronous handler (the REST API, or the metrics page).
// One io_context run by `threads` threads; a connection reads a request,
// hands it to the handler, and writes the reply whenever the handler calls
// back (from any thread), then reads the next request.
// Limits: header bytes (431), body bytes (413), a header that does not arrive
// within header_timeout (slow client: closed), open connections (503).
// While a request is being served the connection watches its socket: a client
// that closes sets HttpRequest::cancelled so queued work can be dropped.
// With options.tls enabled every connection speaks HTTPS (TLS 1.2+; the
// handshake must finish within header_timeout; a failed handshake closes that
// connection only), and with tls.client_ca_file only clients presenting a
// certificate issued by that CA get through (mutual TLS).
// Boost types stay in http_server.cc; no exception leaves this class.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "frontend/tls_options.h"
#include "security/authorizer.h"

namespace hearth::frontend {

struct HttpRequest {
  std::string method;
  std::string target;  // raw (percent-encoded) path and query
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<std::atomic<bool>> cancelled;  // set when the client disconnects mid-request
  std::string remote_address;       // the peer's IP address, no port (IPv4-mapped IPv6 as plain IPv4)
  std::string client_cert_subject;  // mutual TLS: the verified client certificate's subject
                                    // (RFC 2253, e.g. "CN=alice"); "" otherwise
  // The caller the header check authenticated, handed on to the handler so it is
  // not looked up twice; null when nobody checked.
  std::shared_ptr<const security::Principal> principal;

  // Case-insensitive header lookup; "" when absent.
  std::string header(std::string_view name) const;
};

struct HttpReply {
  HttpReply() = default;
  HttpReply(int s, std::string b, std::string type = "application/json")
      : status(s), body(std::move(b)), content_type(std::move(type)) {}

  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Retry-After, ...)
};

// Answers a request by calling `respond` exactly once, from any thread.
using HttpResponder = std::function<void(HttpReply)>;
using HttpHandler = std::function<void(HttpRequest, HttpResponder)>;
// Looks at a request once its header is in (`body` still empty) and may
// answer it at once: the reply is sent, the body is not read, and the
// connection closes. Used to refuse unauthenticated callers before they make
// the server buffer a large body. It may set `head.principal`, which the handler
// then receives with the request. Runs on an I/O thread: keep it short.
using HttpHeaderCheck = std::function<std::optional<HttpReply>(HttpRequest& head)>;

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8000;                // 0: any free port (see HttpServer::port())
  int threads = 2;                     // threads running the io_context (>= 1)
  size_t body_limit = 64u << 20;       // bytes; larger bodies get 413
  size_t header_limit = 16u << 10;     // bytes; larger headers get 431
  int header_timeout_seconds = 30;     // a request header (or an idle keep-alive gap) longer than this: close
  int body_timeout_seconds = 120;      // reading the body and writing the reply
  size_t max_connections = 1024;       // more get 503 and a close
  // An HTTP thread that ran out of work polls for this long before it sleeps,
  // while its recent idle gaps were shorter than that (a client sending its
  // next request right after each reply). 0: always sleep. See SERVING.md.
  int busy_poll_us = 0;
  std::string name = "http";           // for logs
  HttpHeaderCheck header_check;        // optional (see HttpHeaderCheck)
  TlsOptions tls;                      // enabled(): HTTPS (and mutual TLS with tls.client_ca_file)
};

class HttpServer {
 public:
  HttpServer(HttpHandler handler, HttpServerOptions options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the worker threads; returns at once. With TLS,
  // an unreadable, malformed or mismatched certificate / key / client CA file
  // fails here with a Status naming that file.
  Status start();
  // The bound port (useful after start() with port 0).
  uint16_t port() const;
  // Stops accepting, ends every connection and joins the threads. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::frontend
