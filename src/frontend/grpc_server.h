// GrpcServer: the KServe v2 / Triton gRPC front end of `hearth serve`
// (service inference.GRPCInferenceService of grpc_service.proto, plus the
// standard grpc.health.v1 health service). A thin translation layer: every
// RPC decodes its message, calls InferenceServer (server.h) and encodes what
// comes back, so gRPC and REST behave the same.
//
//   ServerLive / ServerReady / ModelReady       health
//   ServerMetadata / ModelMetadata / ModelConfig
//   ModelInfer, ModelStreamInfer                 inference (a stream's requests
//                                                are pipelined, answered in order;
//                                                errors go in error_message)
//   ModelStatistics, RepositoryIndex / RepositoryModelLoad / RepositoryModelUnload
//
// Errors map InvalidArgument/Unimplemented/OutOfRange -> INVALID_ARGUMENT,
// NotFound -> NOT_FOUND, Unavailable -> UNAVAILABLE, and so on (grpc_codec.h).
// A client that disconnects or whose deadline passes cancels its queued work.
// With options.tls enabled the listener speaks TLS (mutual TLS with a client
// CA: a verified client certificate is required).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "serving/server.h"
#include "frontend/tls_options.h"

namespace grpc {
class ServerContext;
}

namespace hearth::frontend {

class RequestGuard;

struct GrpcServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8001;  // 0 = any free port
  int max_message_mb = 64;  // 1..4096; larger messages are rejected by gRPC (RESOURCE_EXHAUSTED)
  // Most threads gRPC may use for calls; each in-flight ModelInfer holds one
  // while it waits for its result.
  int max_threads = 64;
  TlsOptions tls;  // enabled(): TLS; with tls.client_ca_file, client certificates required and verified
  // Authentication, RBAC, audit and the access log (request_guard.h); nullptr:
  // everything allowed, nothing recorded. Must outlive the GrpcServer.
  RequestGuard* guard = nullptr;
};

// The subject of the call's verified client certificate, RFC 2253 text as
// gRPC's "x509_subject" auth property gives it (e.g. "CN=alice"; the same
// text HttpRequest::client_cert_subject holds); "" without mutual TLS.
std::string grpc_client_cert_subject(const grpc::ServerContext& ctx);

class GrpcServer {
 public:
  // Builds and starts the server, with grpc.health.v1 enabled and its serving
  // status following server.ready(). Fails with a clear Status when the port
  // cannot be bound or an option is out of range. `server` must outlive the
  // GrpcServer.
  static Result<std::unique_ptr<GrpcServer>> start(serving::InferenceServer& server, const GrpcServerOptions& options);

  // The bound port (the chosen one when options.port was 0).
  uint16_t port() const;
  // Graceful shutdown: in-flight calls get about 2 s to finish, then are
  // cancelled. Idempotent; the destructor calls it.
  void stop();
  ~GrpcServer();

  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

 private:
  GrpcServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::frontend
