// The gRPC service of `hearth serve`: GRPCInferenceService over InferenceServer,
// plus gRPC's standard health service kept in step with server.ready().
#include "frontend/grpc_server.h"

#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <iterator>
#include <limits>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "grpc_service.grpc.pb.h"
#include "frontend/request_guard.h"
#include "frontend/grpc_codec.h"
#include "frontend/grpc_stream.h"
#include "repository/model_upload.h"
#include "telemetry/log.h"

namespace hearth::frontend {

using namespace serving;  // the core these front ends serve
using namespace repository;

namespace {

using namespace std::chrono_literals;

// The service name clients may pass to grpc.health.v1.Health/Check.
constexpr const char* kServiceName = "inference.GRPCInferenceService";

// gRPC's own diagnostics (e.g. why a port could not be bound) as JSON log
// lines like every other event of `hearth serve`, instead of gRPC's format.
void log_grpc_message(gpr_log_func_args* args) {
  telemetry::LogLevel level = telemetry::LogLevel::kError;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = telemetry::LogLevel::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = telemetry::LogLevel::kInfo;
  // A failed TLS handshake (a port scanner, a plain-text client, a bad client
  // certificate) is the client's problem, logged at debug as on the HTTP side.
  if (args->message && std::string_view(args->message).find("Handshake failed") != std::string_view::npos)
    level = telemetry::LogLevel::kDebug;
  telemetry::Logger::global().log(level, "grpc_core",
                                  {telemetry::field("message", args->message ? args->message : ""),
                                   telemetry::field("file", args->file ? args->file : ""),
                                   telemetry::field("line", args->line)});
}

// Runs `f` (returning Status) and converts the outcome, so that no exception
// leaves a handler.
template <typename F>
grpc::Status guarded(F&& f) {
  try {
    return to_grpc_status(f());
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, str_cat("internal error: ", e.what()));
  } catch (...) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "internal error: unknown exception");
  }
}

// The peer's IP address from gRPC's "ipv4:1.2.3.4:5678" / "ipv6:[::1]:5678".
std::string peer_address(const std::string& peer) {
  std::string rest = peer.substr(peer.find(':') + 1);
  if (!rest.empty() && rest.front() == '[') return rest.substr(1, rest.find(']') - 1);
  size_t colon = rest.rfind(':');
  return colon == std::string::npos ? rest : rest.substr(0, colon);
}

std::string metadata_value(const grpc::ServerContext& context, const char* key) {
  const auto& md = context.client_metadata();
  auto it = md.find(key);
  return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

// Who sent a call, as gRPC saw it.
GuardedRequest guarded_request(const grpc::ServerContext& context) {
  GuardedRequest g;
  g.caller = Caller{metadata_value(context, "authorization"), peer_address(context.peer()),
                    grpc_client_cert_subject(context), metadata_value(context, "x-request-id")};
  if (g.caller.request_id.empty() || g.caller.request_id.size() > 128) g.caller.request_id = telemetry::new_request_id();
  return g;
}

AccessNeed model_need(const std::string& model, const std::string& version, bool inference_allows = true) {
  AccessNeed need;
  need.resource = security::Resource::kModels;
  need.model = model;
  need.version = version;
  if (inference_allows) need.alternative = std::make_pair(security::Resource::kInference, security::Action::kInfer);
  return need;
}

AccessNeed infer_need(const std::string& model, const std::string& version) {
  AccessNeed need = model_need(model, version, false);
  need.resource = security::Resource::kInference;
  need.action = security::Action::kInfer;
  return need;
}

AccessNeed control_need(const std::string& model, const char* event) {
  AccessNeed need = model_need(model, "", false);
  need.action = security::Action::kDeploy;
  need.event = event;
  return need;
}

// A load that uploads needs models:create (files) or models:update (a config
// alone) besides models:deploy; decided from the parameter names only.
template <typename Map>
bool add_upload_need(AccessNeed& need, const Map& parameters) {
  bool files = false, config = false;
  for (const auto& kv : parameters) {
    LoadParameterKind kind = load_parameter_kind(kv.first);
    files = files || kind == LoadParameterKind::kFile;
    config = config || kind == LoadParameterKind::kConfig;
  }
  if (!files && !config) return false;
  need.action = files ? security::Action::kCreate : security::Action::kUpdate;
  need.event = "model.upload";
  return true;
}

// Triton's load parameters: "config" (string_param, the model config as JSON)
// and "file:<path>" (bytes_param); anything else is refused.
template <typename Map>
Result<ModelUpload> upload_from_parameters(const Map& parameters) {
  ModelUpload upload;
  for (const auto& [name, p] : parameters) {
    switch (load_parameter_kind(name)) {
      case LoadParameterKind::kConfig:
        if (p.parameter_choice_case() != inference::ModelRepositoryParameter::kStringParam)
          return invalid_argument("parameter 'config' must be a string_param holding the model config as JSON");
        upload.config_json = p.string_param();
        break;
      case LoadParameterKind::kFile:
        if (p.parameter_choice_case() != inference::ModelRepositoryParameter::kBytesParam)
          return invalid_argument("parameter '", name, "' must be a bytes_param holding the file");
        upload.files.push_back({name.substr(kUploadFilePrefix.size()), p.bytes_param()});
        break;
      case LoadParameterKind::kUnknown: return unsupported_load_parameter(name);
    }
  }
  return upload;
}

AccessNeed plain_need(security::Resource resource) {
  AccessNeed need;
  need.resource = resource;
  return need;
}

const char* grpc_code_name(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                           "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                           "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(std::size(kNames)) ? kNames[i] : "UNKNOWN";
}

class InferenceService final : public inference::GRPCInferenceService::Service {
 public:
  InferenceService(InferenceServer& server, RequestGuard& guard)
      : server_(server), guard_(guard), checks_(!guard.pass_through()) {}

  grpc::Status ServerLive(grpc::ServerContext* context, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* out) override {
    return logged("ServerLive", context, [&](GuardedRequest&) {
      out->set_live(server_.live());
      return ok_status();
    });
  }

  grpc::Status ServerReady(grpc::ServerContext* context, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* out) override {
    return logged("ServerReady", context, [&](GuardedRequest&) {
      out->set_ready(server_.ready());
      return ok_status();
    });
  }

  grpc::Status ModelReady(grpc::ServerContext* context, const inference::ModelReadyRequest* in,
                          inference::ModelReadyResponse* out) override {
    return logged("ModelReady", context, [&](GuardedRequest& g) -> Status {
      HEARTH_RETURN_IF_ERROR(admit(context, g, model_need(in->name(), in->version())));
      HEARTH_ASSIGN_OR_RETURN(bool ready, server_.model_ready(in->name(), in->version()));
      out->set_ready(ready);
      return ok_status();
    });
  }

  grpc::Status ServerMetadata(grpc::ServerContext* context, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* out) override {
    return logged("ServerMetadata", context, [&](GuardedRequest& g) -> Status {
      HEARTH_RETURN_IF_ERROR(admit(context, g, plain_need(security::Resource::kSystemConfig)));
      serving::ServerMetadata m = server_.server_metadata();
      out->set_name(m.name);
      out->set_version(m.version);
      for (const std::string& e : m.extensions) out->add_extensions(e);
      return ok_status();
    });
  }

  grpc::Status ModelMetadata(grpc::ServerContext* context, const inference::ModelMetadataRequest* in,
                             inference::ModelMetadataResponse* out) override {
    return logged("ModelMetadata", context, [&](GuardedRequest& g) -> Status {
      HEARTH_RETURN_IF_ERROR(admit(context, g, model_need(in->name(), in->version())));
      HEARTH_ASSIGN_OR_RETURN(serving::ModelMetadata m, server_.model_metadata(in->name(), in->version()));
      encode_model_metadata(m, out);
      return ok_status();
    });
  }

  grpc::Status ModelConfig(grpc::ServerContext* context, const inference::ModelConfigRequest* in,
                           inference::ModelConfigResponse* out) override {
    return logged("ModelConfig", context, [&](GuardedRequest& g) -> Status {
      HEARTH_RETURN_IF_ERROR(admit(context, g, model_need(in->name(), in->version())));
      HEARTH_ASSIGN_OR_RETURN(*out->mutable_config(), server_.model_config(in->name(), in->version()));
      return ok_status();
    });
  }

  grpc::Status ModelInfer(grpc::ServerContext* context, const inference::ModelInferRequest* in,
                          inference::ModelInferResponse* out) override {
    return logged("ModelInfer", context, [&](GuardedRequest& g) -> Status {
      if (!checks_) return infer_unary(server_, context, *in, out);
      const AccessNeed need = infer_need(in->model_name(), in->model_version());
      HEARTH_RETURN_IF_ERROR(admit(context, g, need));
      Status s = infer_unary(server_, context, *in, out);
      guard_.record(g, need, s);
      return s;
    });
  }

  grpc::Status ModelStreamInfer(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>* stream) override {
    return logged("ModelStreamInfer", context, [&](GuardedRequest& g) -> Status {
      if (!checks_) return serve_infer_stream(server_, context, stream);
      // The stream is refused at once without valid credentials.
      HEARTH_RETURN_IF_ERROR(guard_.authenticate(g, infer_need("", "")));
      // Each request is checked again in full, so a token revoked or expired
      // (or a role taken away) mid-stream stops the next request.
      return serve_infer_stream(server_, context, stream,
                                [this, caller = g.caller](const inference::ModelInferRequest& request) -> Status {
                                  GuardedRequest each;
                                  each.caller = caller;
                                  const AccessNeed need = infer_need(request.model_name(), request.model_version());
                                  HEARTH_RETURN_IF_ERROR(guard_.admit(each, need));
                                  guard_.record(each, need, ok_status());
                                  return ok_status();
                                });
    });
  }

  grpc::Status ModelStatistics(grpc::ServerContext* context, const inference::ModelStatisticsRequest* in,
                               inference::ModelStatisticsResponse* out) override {
    return logged("ModelStatistics", context, [&](GuardedRequest& g) -> Status {
      HEARTH_RETURN_IF_ERROR(admit(context, g, model_need(in->name(), in->version(), false)));
      HEARTH_ASSIGN_OR_RETURN(auto stats, server_.model_statistics(in->name(), in->version()));
      for (const serving::ModelStatistics& s : stats) encode_model_statistics(s, out->add_model_stats());
      return ok_status();
    });
  }

  grpc::Status RepositoryIndex(grpc::ServerContext* context, const inference::RepositoryIndexRequest* in,
                               inference::RepositoryIndexResponse* out) override {
    return logged("RepositoryIndex", context, [&](GuardedRequest& g) -> Status {
      HEARTH_RETURN_IF_ERROR(admit(context, g, plain_need(security::Resource::kRepository)));
      for (const ModelIndexEntry& e : server_.repository_index(in->ready())) {
        auto* m = out->add_models();
        m->set_name(e.name);
        m->set_version(e.version);
        m->set_state(e.state);
        m->set_reason(e.reason);
      }
      return ok_status();
    });
  }

  grpc::Status RepositoryModelLoad(grpc::ServerContext* context, const inference::RepositoryModelLoadRequest* in,
                                   inference::RepositoryModelLoadResponse*) override {
    return logged("RepositoryModelLoad", context, [&](GuardedRequest& g) -> Status {
      AccessNeed need = control_need(in->model_name(), "model.load");
      AccessNeed upload = need;
      if (!add_upload_need(upload, in->parameters())) {
        return control(context, g, need, [&]() -> Status {
          HEARTH_ASSIGN_OR_RETURN(ModelUpload none, upload_from_parameters(in->parameters()));
          return server_.load_model(in->model_name(), none);
        });
      }
      // An upload needs models:deploy and models:create (files) or update (a config alone).
      HEARTH_RETURN_IF_ERROR(admit(context, g, need));
      HEARTH_RETURN_IF_ERROR(guard_.authorize(g, upload));
      auto files = upload_from_parameters(in->parameters());
      Status s = files.ok() ? server_.load_model(in->model_name(), *files) : files.status();
      guard_.record(g, upload, s);
      return s;
    });
  }

  grpc::Status RepositoryModelUnload(grpc::ServerContext* context, const inference::RepositoryModelUnloadRequest* in,
                                     inference::RepositoryModelUnloadResponse*) override {
    return logged("RepositoryModelUnload", context, [&](GuardedRequest& g) -> Status {
      return control(context, g, control_need(in->model_name(), "model.unload"), [&]() -> Status {
        HEARTH_RETURN_IF_ERROR(check_unload_parameters(in->parameters()));
        return server_.unload_model(in->model_name());
      });
    });
  }

 private:
  // Runs a call through guarded() with its GuardedRequest; with the access log,
  // writes one JSON line for it, as the REST side writes http_request lines.
  template <typename F>
  grpc::Status logged(const char* method, grpc::ServerContext* context, F&& f) {
    GuardedRequest g = guarded_request(*context);
    grpc::Status status = guarded([&] { return f(g); });
    guard_.log_grpc(g, method, grpc_code_name(status.error_code()));
    return status;
  }

  // Authenticates and authorizes a call (nothing to do when the guard passes
  // everything through); a client locked out learns when to retry.
  Status admit(grpc::ServerContext* context, GuardedRequest& g, const AccessNeed& need) {
    if (!checks_ && need.event.empty()) return ok_status();
    int retry_after = 0;
    Status s = guard_.admit(g, need, &retry_after);
    if (!s.ok() && retry_after > 0) context->AddTrailingMetadata("retry-after", std::to_string(retry_after));
    return s;
  }

  // A control-plane call: admitted, run, and audited with its outcome.
  template <typename F>
  Status control(grpc::ServerContext* context, GuardedRequest& g, const AccessNeed& need, F&& run) {
    HEARTH_RETURN_IF_ERROR(admit(context, g, need));
    Status s = run();
    guard_.record(g, need, s);
    return s;
  }

  // Triton's load/unload parameters ("config", "file:...", "unload_dependents")
  // are not supported; say so rather than silently ignoring them.
  template <typename Map>
  static Status check_no_parameters(const Map& parameters, const char* rpc) {
    if (parameters.empty()) return ok_status();
    return unimplemented(rpc, ": parameter '", parameters.begin()->first, "' is not supported");
  }

  // Extensions Hearth does not serve: UNIMPLEMENTED naming them (the generated
  // default answers with an empty message).
#define HEARTH_NOT_SERVED(Rpc, what)                                                                        \
  grpc::Status Rpc(grpc::ServerContext*, const inference::Rpc##Request*, inference::Rpc##Response*) override { \
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,                                                    \
                        #Rpc ": the " what " extension is not supported by Hearth");                          \
  }
  HEARTH_NOT_SERVED(SystemSharedMemoryStatus, "system shared memory")
  HEARTH_NOT_SERVED(SystemSharedMemoryRegister, "system shared memory")
  HEARTH_NOT_SERVED(SystemSharedMemoryUnregister, "system shared memory")
  HEARTH_NOT_SERVED(CudaSharedMemoryStatus, "CUDA shared memory")
  HEARTH_NOT_SERVED(CudaSharedMemoryRegister, "CUDA shared memory")
  HEARTH_NOT_SERVED(CudaSharedMemoryUnregister, "CUDA shared memory")
  HEARTH_NOT_SERVED(TraceSetting, "trace")
  HEARTH_NOT_SERVED(LogSettings, "logging")
#undef HEARTH_NOT_SERVED

  // tritonclient sends unload_dependents (a bool) with every unload. Hearth has
  // no ensembles, so a model has no dependents: true and false unload the same.
  template <typename Map>
  static Status check_unload_parameters(const Map& parameters) {
    for (const auto& [key, value] : parameters) {
      if (key != "unload_dependents")
        return unimplemented("RepositoryModelUnload: parameter '", key, "' is not supported");
      if (value.parameter_choice_case() != inference::ModelRepositoryParameter::kBoolParam)
        return invalid_argument("RepositoryModelUnload: parameter 'unload_dependents' must be a bool_param");
    }
    return ok_status();
  }

  InferenceServer& server_;
  RequestGuard& guard_;
  bool checks_;  // data-plane calls are checked (auth on, or inference audited)
};

std::string host_port(const std::string& address, uint16_t port) {
  bool ipv6 = address.find(':') != std::string::npos && address.front() != '[';
  return ipv6 ? str_cat("[", address, "]:", port) : str_cat(address, ":", port);
}

}  // namespace

struct GrpcServer::Impl {
  InferenceServer* server = nullptr;
  std::unique_ptr<RequestGuard> own_guard;  // allow-all, when the options give none
  std::unique_ptr<InferenceService> service;
  std::unique_ptr<grpc::Server> grpc_server;
  uint16_t port = 0;

  // Health watcher: mirrors server->ready() into the health service.
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool stopped = false;
  std::thread health_thread;

  void set_health(bool ready) {
    grpc::HealthCheckServiceInterface* health = grpc_server->GetHealthCheckService();
    if (health == nullptr) return;
    health->SetServingStatus(ready);
    health->SetServingStatus(kServiceName, ready);
  }

  void watch_health(bool last) {
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, 250ms, [&] { return stopping; })) {
      bool ready = server->ready();
      if (ready != last) set_health(ready);
      last = ready;
    }
  }
};

GrpcServer::GrpcServer() : impl_(std::make_unique<Impl>()) {}

GrpcServer::~GrpcServer() { stop(); }

uint16_t GrpcServer::port() const { return impl_->port; }

namespace {

// Plain, TLS, or mutual TLS (client certificate required, verified against
// the client CA). The files are checked with OpenSSL first so that a bad one
// is named, instead of gRPC failing to bind with a vague log line.
Result<std::shared_ptr<grpc::ServerCredentials>> server_credentials(const TlsOptions& tls) {
  if (!tls.enabled()) {
    if (!tls.key_file.empty() || !tls.client_ca_file.empty())
      return invalid_argument("gRPC server: TLS key or client CA given without a certificate");
    return grpc::InsecureServerCredentials();
  }
  if (Status s = check_tls_files(tls); !s.ok()) return s.with_context("gRPC server");
  grpc::SslServerCredentialsOptions ssl(tls.client_ca_file.empty()
                                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  HEARTH_ASSIGN_OR_RETURN(pair.cert_chain, read_tls_file(tls.cert_file, "TLS certificate"));
  HEARTH_ASSIGN_OR_RETURN(pair.private_key, read_tls_file(tls.key_file, "TLS key"));
  if (!tls.client_ca_file.empty()) {
    HEARTH_ASSIGN_OR_RETURN(ssl.pem_root_certs, read_tls_file(tls.client_ca_file, "TLS client CA"));
  }
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

std::string grpc_client_cert_subject(const grpc::ServerContext& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return "";
  std::vector<grpc::string_ref> values = auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
  if (values.empty()) return "";
  return std::string(values.front().data(), values.front().size());
}

Result<std::unique_ptr<GrpcServer>> GrpcServer::start(InferenceServer& server, const GrpcServerOptions& options) {
  if (options.max_message_mb < 1 || options.max_message_mb > 4096)
    return invalid_argument("gRPC max message size must be 1..4096 MiB, got ", options.max_message_mb);
  // gRPC counts message bytes in an int: 2048 MiB and more become INT_MAX.
  int max_bytes = static_cast<int>(
      std::min<int64_t>(static_cast<int64_t>(options.max_message_mb) << 20, std::numeric_limits<int>::max()));
  if (options.max_threads < 2) return invalid_argument("gRPC max threads must be at least 2, got ", options.max_threads);
  std::string where = host_port(options.address, options.port);
  try {
    std::unique_ptr<GrpcServer> self(new GrpcServer());
    Impl& impl = *self->impl_;
    impl.server = &server;
    RequestGuard* guard = options.guard;
    if (guard == nullptr) {
      impl.own_guard = std::make_unique<RequestGuard>(nullptr, nullptr, GuardOptions{}, nullptr);
      guard = impl.own_guard.get();
    }
    impl.service = std::make_unique<InferenceService>(server, *guard);

    static std::once_flag log_once;
    std::call_once(log_once, [] { gpr_set_log_function(log_grpc_message); });
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int bound_port = 0;
    HEARTH_ASSIGN_OR_RETURN(auto credentials, server_credentials(options.tls));
    builder.AddListeningPort(where, credentials, &bound_port);
    // gRPC sets SO_REUSEPORT by default, which would let a second server share
    // a busy port silently; a taken port must be an error instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.RegisterService(impl.service.get());
    builder.SetMaxReceiveMessageSize(max_bytes);
    builder.SetMaxSendMessageSize(max_bytes);
    grpc::ResourceQuota quota("hearth-grpc");
    quota.SetMaxThreads(options.max_threads);
    builder.SetResourceQuota(quota);

    impl.grpc_server = builder.BuildAndStart();
    if (impl.grpc_server == nullptr || bound_port == 0)
      return Status(StatusCode::kUnavailable,
                    str_cat("cannot listen for gRPC on ", where, " (port in use or address not available)"));
    impl.port = static_cast<uint16_t>(bound_port);

    bool ready = server.ready();
    impl.set_health(ready);
    impl.health_thread = std::thread([&impl, ready] { impl.watch_health(ready); });
    return self;
  } catch (const std::exception& e) {
    return internal_error("starting the gRPC server on ", where, ": ", e.what());
  }
}

void GrpcServer::stop() {
  Impl& impl = *impl_;
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    if (impl.stopped) return;
    impl.stopped = true;
    impl.stopping = true;
  }
  impl.cv.notify_all();
  if (impl.health_thread.joinable()) impl.health_thread.join();
  if (impl.grpc_server) {
    // Calls still running after the deadline are cancelled; a waiting
    // ModelInfer notices within 5 ms and returns.
    impl.grpc_server->Shutdown(std::chrono::system_clock::now() + 2s);
    impl.grpc_server->Wait();
  }
}

}  // namespace hearth::frontend
