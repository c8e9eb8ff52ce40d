// HttpServer: HTTP/1.1 with keep-alive on Boost.Beast, serving a RestApi.
// One io_context run by `threads` threads; each connection reads a request,
// lets the RestApi answer it on the same thread, and writes the reply.
// Bodies over `body_limit` bytes get 413; malformed HTTP gets 400 and a close.
// Boost types stay in http_server.cc; no exception leaves this class.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "serving/rest_api.h"

namespace hearth::serving {

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8000;                // 0: any free port (see HttpServer::port())
  int threads = 2;                     // threads running the io_context (>= 1)
  size_t body_limit = 64u << 20;       // bytes; larger bodies get 413
  int idle_timeout_seconds = 60;       // a keep-alive connection idle this long is closed
};

class HttpServer {
 public:
  // Borrows `api`, which must outlive the server.
  HttpServer(const RestApi& api, HttpServerOptions options);
  ~HttpServer();  // stops and joins the threads
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the worker threads; returns at once.
  Status start();
  // The bound port (useful after start() with port 0).
  uint16_t port() const;
  // Blocks until SIGINT or SIGTERM arrives or stop() is called, then stops.
  void wait_for_signal();
  // Stops accepting, ends every connection and joins the threads. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::serving
