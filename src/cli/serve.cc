// `hearth serve`: serves a Triton-style model repository over KServe v2 REST
// (--http-port), gRPC (--grpc-port) and Prometheus metrics (--metrics-port)
// until SIGINT or SIGTERM. Flag names follow Triton's. Every event is one
// JSON log line on stderr (or --log-file).
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/serve_access.h"
#include "core/machine.h"
#include "kernels/cpu_paths.h"
#include "kernels/path_tuner.h"
#include "security/model_source.h"
#include "security/signing.h"
#include "frontend/grpc_server.h"
#include "frontend/http_server.h"
#include "frontend/rest_api.h"
#include "rollout/release_manager.h"
#include "serving/server.h"
#include "serving/trial_load.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"

namespace hearth::cli {

namespace {

struct ServeOptions {
  std::string model_repository;
  std::string control_mode = "none";
  std::vector<std::string> load_models;
  int poll_secs = 15;
  bool strict_readiness = true;
  bool exit_on_error = false;
  int threads = 0;
  LimitFlags limits;
  std::string isolate_loads = "uploads";
  size_t isolated_memory_mb = 4096;
  int isolated_cpu_secs = 120;
  int isolated_timeout_secs = 300;
  std::string http_address = "127.0.0.1";
  int http_port = 8000;
  int http_threads = 2;
  int64_t max_body_mb = 64;
  int64_t default_max_batch_size = 4;
  int64_t max_header_kb = 16;
  int header_timeout_secs = 30;
  int64_t max_connections = 1024;
  int busy_poll_us = 0;
  bool allow_grpc = true;
  std::string grpc_address = "127.0.0.1";
  int grpc_port = 8001;
  bool allow_metrics = true;
  std::string metrics_address = "127.0.0.1";
  int metrics_port = 8002;
  std::string log_level = "info";
  std::string log_file;
  bool access_log = false;
  std::string model_key_store;
  std::string model_key_file;
  frontend::TlsOptions tls;  // --tls-cert / --tls-key / --tls-client-ca: all listeners
  AccessFlags access;
  std::string trusted_signers;
  std::string release_store;  // "" = the default for the repository; "off" = no releases
};

Status check_port(int port, const char* flag) {
  if (port < 0 || port > 65535) return invalid_argument(flag, " must be 0..65535");
  return ok_status();
}

Status check_options(const ServeOptions& o) {
  HEARTH_RETURN_IF_ERROR(check_port(o.http_port, "--http-port"));
  HEARTH_RETURN_IF_ERROR(check_port(o.grpc_port, "--grpc-port"));
  HEARTH_RETURN_IF_ERROR(check_port(o.metrics_port, "--metrics-port"));
  if (o.max_body_mb <= 0 || o.max_body_mb > 4096) return invalid_argument("--http-max-body-mb must be 1..4096");
  if (o.max_header_kb <= 0 || o.max_header_kb > 1024) return invalid_argument("--http-max-header-kb must be 1..1024");
  if (o.header_timeout_secs <= 0) return invalid_argument("--http-header-timeout-secs must be positive");
  if (o.max_connections <= 0) return invalid_argument("--http-max-connections must be positive");
  if (o.busy_poll_us < 0 || o.busy_poll_us > 10000) return invalid_argument("--http-busy-poll-us must be 0..10000");
  if (o.poll_secs <= 0) return invalid_argument("--repository-poll-secs must be positive");
  if (o.tls.cert_file.empty() != o.tls.key_file.empty())
    return invalid_argument(o.tls.cert_file.empty() ? "--tls-key needs --tls-cert" : "--tls-cert needs --tls-key");
  if (!o.tls.client_ca_file.empty() && o.tls.cert_file.empty())
    return invalid_argument("--tls-client-ca needs --tls-cert and --tls-key");
  return ok_status();
}

// The metrics port: GET /metrics in Prometheus text format.
// Reading metrics needs system_config:read (Prometheus sends a bearer token
// with `authorization: {credentials_file: ...}` in its scrape config).
frontend::HttpHandler metrics_handler(telemetry::Registry& registry, frontend::RequestGuard& guard) {
  return [&registry, &guard](frontend::HttpRequest request, frontend::HttpResponder respond) {
    std::string path = request.target.substr(0, request.target.find('?'));
    if (!guard.pass_through()) {
      frontend::GuardedRequest guarded;
      guarded.caller = {request.header("Authorization"), request.remote_address, request.client_cert_subject, ""};
      int retry_after = 0;
      Status who = guard.admit(guarded, frontend::AccessNeed{}, &retry_after);  // system_config read
      if (!who.ok()) {
        frontend::HttpReply reply = frontend::error_reply(who);
        if (retry_after > 0) {
          reply.status = 429;
          reply.headers.emplace_back("Retry-After", std::to_string(retry_after));
        }
        return respond(std::move(reply));
      }
    }
    if (path != "/metrics") return respond(frontend::HttpReply{404, "{\"error\":\"only /metrics is served here\"}"});
    if (request.method != "GET") return respond(frontend::HttpReply{405, "{\"error\":\"use GET\"}"});
    frontend::HttpReply reply{200, registry.render(), "text/plain; version=0.0.4; charset=utf-8"};
    respond(std::move(reply));
  };
}

// The release manager over the store (null with "off"). The default store that
// cannot be opened (no HOME, a read-only home) turns releases off with a warning;
// a store named with --release-store must open.
Result<std::unique_ptr<rollout::ReleaseManager>> open_releases(const ServeOptions& o, security::AuditLog* audit) {
  const bool named = !o.release_store.empty();
  const std::string path = named ? o.release_store : rollout::ReleaseStore::default_path(o.model_repository);
  if (path == "off") return std::unique_ptr<rollout::ReleaseManager>();
  auto store = rollout::ReleaseStore::open(path);
  if (!store.ok()) {
    if (named) return store.status();
    telemetry::log_warn("releases_off", {telemetry::field("store", path), telemetry::field("error", store.status().message())});
    return std::unique_ptr<rollout::ReleaseManager>();
  }
  rollout::ReleaseManagerOptions ro;
  ro.repository = o.model_repository;
  ro.audit = audit;
  HEARTH_ASSIGN_OR_RETURN(auto manager, rollout::ReleaseManager::open(std::move(store).value(), ro));
  telemetry::log_info("releases", {telemetry::field("store", path)});
  return manager;
}

void log_listening(const char* protocol, const std::string& address, uint16_t port, const frontend::TlsOptions& tls) {
  telemetry::log_info("listening", {telemetry::field("protocol", protocol), telemetry::field("address", address),
                                    telemetry::field("port", static_cast<int64_t>(port)),
                                    telemetry::field("tls", tls.enabled()),
                                    telemetry::field("mtls", tls.enabled() && !tls.client_ca_file.empty())});
}

Status serve(const ServeOptions& o) {
  HEARTH_RETURN_IF_ERROR(check_options(o));
  HEARTH_ASSIGN_OR_RETURN(auto level, telemetry::parse_log_level(o.log_level));
  telemetry::Logger::global().set_level(level);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> log_file(nullptr, &std::fclose);
  if (!o.log_file.empty()) {
    log_file.reset(std::fopen(o.log_file.c_str(), "a"));
    if (!log_file) return invalid_argument("cannot open --log-file '", o.log_file, "'");
    telemetry::Logger::global().set_sink(log_file.get());
  }
  // SIGINT / SIGTERM are taken by sigwait below; every thread started from
  // here on inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Access control first: a misconfiguration fails before models load.
  std::vector<std::string> addresses{o.http_address};
  if (o.allow_grpc) addresses.push_back(o.grpc_address);
  if (o.allow_metrics) addresses.push_back(o.metrics_address);
  AccessFlags guard_flags = o.access;
  guard_flags.access_log = o.access_log;
  HEARTH_ASSIGN_OR_RETURN(auto guard, make_request_guard(guard_flags, addresses));

  // What the engine found on this machine and will use (docs: `hearth cpu`).
  telemetry::log_info("machine", {telemetry::field("cpu", cpu_info().summary()),
                                  telemetry::field("isa", isa_name(isa_level())),
                                  telemetry::field("onednn_isa", onednn_isa_name()),
                                  telemetry::field("cores", cpu_info().physical_cores),
                                  telemetry::field("tuning_cache", TuningCache::default_path())});

  serving::ServerOptions so;
  so.model_repository = o.model_repository;
  HEARTH_ASSIGN_OR_RETURN(so.control_mode, serving::parse_model_control_mode(o.control_mode));
  so.startup_models = o.load_models;
  so.repository_poll_seconds = o.poll_secs;
  so.total_threads = o.threads;
  so.max_tensor_bytes = o.limits.max_tensor_bytes;
  so.max_memory_bytes = o.limits.max_memory_bytes;
  so.default_max_batch_size = o.default_max_batch_size;
  HEARTH_ASSIGN_OR_RETURN(so.trial_loads.scope, serving::parse_trial_load_scope(o.isolate_loads));
  so.trial_loads.executable = "/proc/self/exe";  // this very binary, even if replaced on disk since
  so.trial_loads.memory_bytes = o.isolated_memory_mb << 20;
  so.trial_loads.cpu_seconds = o.isolated_cpu_secs;
  so.trial_loads.timeout_seconds = o.isolated_timeout_secs;
  so.strict_readiness = o.strict_readiness;
  so.exit_on_error = o.exit_on_error;
  HEARTH_ASSIGN_OR_RETURN(auto keys, security::make_server_key_resolver(o.model_key_store, o.model_key_file));
  so.model_keys = std::move(keys);
  if (!o.trusted_signers.empty()) {
    HEARTH_ASSIGN_OR_RETURN(security::TrustedSigners signers, security::TrustedSigners::load(o.trusted_signers));
    telemetry::log_info("trusted_signers", {telemetry::field("path", o.trusted_signers),
                                            telemetry::field("signers", signers.ids())});
    so.trusted_signers = std::make_shared<const security::TrustedSigners>(std::move(signers));
  }
  // The release store is read before the first load, so that the versions it
  // holds (production, previous, running releases) load from the start and the
  // routing it chose is in place before any request is served.
  HEARTH_ASSIGN_OR_RETURN(auto releases, open_releases(o, guard->audit_log()));
  if (releases) so.version_pins = releases->version_pins();
  HEARTH_ASSIGN_OR_RETURN(auto server, serving::InferenceServer::create(so));
  // Whatever way serve() returns from here, the release worker (and a gate it runs)
  // stops before the server it uses is destroyed.
  struct StopReleases {
    rollout::ReleaseManager* manager;
    ~StopReleases() {
      if (manager) manager->stop();
    }
  } stop_releases{releases.get()};
  if (releases) HEARTH_RETURN_IF_ERROR(releases->attach(*server));
  for (const auto& e : server->repository_index(false))
    telemetry::log_info("model_state", {telemetry::field("model", e.name), telemetry::field("version", e.version),
                                        telemetry::field("state", e.state), telemetry::field("reason", e.reason)});

  guard->attach_metrics(server->metrics());
  frontend::RestApi api(*server, frontend::RestApiOptions{guard.get(), releases.get(),
                                                         static_cast<size_t>(o.max_body_mb) << 20});
  frontend::HttpServerOptions ho;
  ho.address = o.http_address;
  ho.port = static_cast<uint16_t>(o.http_port);
  ho.threads = std::max(1, o.http_threads);
  ho.body_limit = static_cast<size_t>(o.max_body_mb) << 20;
  ho.header_limit = static_cast<size_t>(o.max_header_kb) << 10;
  ho.header_timeout_seconds = o.header_timeout_secs;
  ho.max_connections = static_cast<size_t>(o.max_connections);
  ho.busy_poll_us = o.busy_poll_us;
  // With authentication on, a caller whose credentials fail is answered
  // before the server reads (and buffers) its body.
  if (guard->auth_enabled())
    ho.header_check = [&api](frontend::HttpRequest& head) { return api.check_header(head); };
  ho.tls = o.tls;
  frontend::HttpServer http(
      [&api](frontend::HttpRequest request, frontend::HttpResponder respond) {
        api.handle(std::move(request), std::move(respond));
      },
      ho);
  HEARTH_RETURN_IF_ERROR(http.start());
  log_listening("http", o.http_address, http.port(), o.tls);

  std::unique_ptr<frontend::GrpcServer> grpc;
  if (o.allow_grpc) {
    frontend::GrpcServerOptions go;
    go.address = o.grpc_address;
    go.port = static_cast<uint16_t>(o.grpc_port);
    go.max_message_mb = static_cast<int>(o.max_body_mb);
    go.tls = o.tls;
    go.guard = guard.get();
    HEARTH_ASSIGN_OR_RETURN(grpc, frontend::GrpcServer::start(*server, go));
    log_listening("grpc", o.grpc_address, grpc->port(), o.tls);
  }
  std::unique_ptr<frontend::HttpServer> metrics;
  if (o.allow_metrics) {
    frontend::HttpServerOptions mo;
    mo.address = o.metrics_address;
    mo.port = static_cast<uint16_t>(o.metrics_port);
    mo.threads = 1;
    mo.body_limit = 1 << 16;
    mo.max_connections = 64;
    mo.name = "metrics";
    mo.tls = o.tls;
    metrics = std::make_unique<frontend::HttpServer>(metrics_handler(server->metrics(), *guard), mo);
    HEARTH_RETURN_IF_ERROR(metrics->start());
    log_listening("metrics", o.metrics_address, metrics->port(), o.tls);
  }

  int sig = 0;
  sigwait(&signals, &sig);
  telemetry::log_info("stopping", {telemetry::field("signal", sig)});
  // Front ends first (no new requests), then the models drain and unload.
  http.stop();
  if (grpc) grpc->stop();
  if (metrics) metrics->stop();
  if (releases) releases->stop();  // before the server's models unload
  server.reset();
  telemetry::log_info("stopped");
  return ok_status();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model repository over KServe v2 REST and gRPC");
  cmd->add_option("--model-repository", o->model_repository, "folder of <model>/[config.pbtxt] and <model>/<version>/model.onnx")
      ->required();
  cmd->add_option("--model-control-mode", o->control_mode, "none | poll | explicit")->capture_default_str();
  cmd->add_option("--load-model", o->load_models, "explicit mode: model to load at start (repeatable; * = all)");
  cmd->add_option("--repository-poll-secs", o->poll_secs, "poll mode: seconds between repository scans")
      ->capture_default_str();
  cmd->add_option("--strict-readiness", o->strict_readiness, "ready only while every model is ready")
      ->capture_default_str();
  cmd->add_option("--exit-on-error", o->exit_on_error, "exit when a model fails to load at start")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "cores each model's instances share (0 = all)");
  add_limit_flags(cmd, o->limits);  // per model; config.pbtxt parameters of the same names win
  cmd->add_option("--isolate-model-loads", o->isolate_loads,
                  "load new versions first in a confined child process: none | uploads | all")
      ->capture_default_str();
  cmd->add_option("--isolated-load-memory-mb", o->isolated_memory_mb,
                  "address space of that child, in MiB, on top of twice the model's size")
      ->capture_default_str();
  cmd->add_option("--isolated-load-cpu-secs", o->isolated_cpu_secs, "CPU time of that child")->capture_default_str();
  cmd->add_option("--isolated-load-timeout-secs", o->isolated_timeout_secs, "wall-clock time of that child")
      ->capture_default_str();
  cmd->add_option("--http-port", o->http_port, "HTTP port (0 = any free port)")->capture_default_str();
  cmd->add_option("--http-address", o->http_address, "HTTP address to listen on")->capture_default_str();
  cmd->add_option("--http-thread-count", o->http_threads, "threads serving HTTP connections")->capture_default_str();
  cmd->add_option("--default-max-batch-size", o->default_max_batch_size,
                  "models without config.pbtxt whose inputs and outputs all have a variable leading dim get this "
                  "max_batch_size and dynamic batching, as Triton's auto-complete does (0: max_batch_size 0)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--http-max-body-mb", o->max_body_mb, "largest request body in MiB (larger: 413)")
      ->capture_default_str();
  cmd->add_option("--http-max-header-kb", o->max_header_kb, "largest request header in KiB (larger: 431)")
      ->capture_default_str();
  cmd->add_option("--http-header-timeout-secs", o->header_timeout_secs,
                  "close a connection whose request header takes longer (slow clients) or that idles longer")
      ->capture_default_str();
  cmd->add_option("--http-max-connections", o->max_connections, "open HTTP connections (more: 503)")
      ->capture_default_str();
  cmd->add_option("--http-busy-poll-us", o->busy_poll_us,
                  "an idle HTTP thread polls this long before sleeping while requests come back quickly (0 = off)")
      ->capture_default_str();
  cmd->add_option("--allow-grpc", o->allow_grpc, "serve gRPC")->capture_default_str();
  cmd->add_option("--grpc-port", o->grpc_port, "gRPC port (0 = any free port)")->capture_default_str();
  cmd->add_option("--grpc-address", o->grpc_address, "gRPC address to listen on")->capture_default_str();
  cmd->add_option("--allow-metrics", o->allow_metrics, "serve Prometheus metrics")->capture_default_str();
  cmd->add_option("--metrics-port", o->metrics_port, "metrics port (0 = any free port)")->capture_default_str();
  cmd->add_option("--metrics-address", o->metrics_address, "metrics address to listen on")->capture_default_str();
  cmd->add_option("--log-level", o->log_level, "debug | info | warn | error")->capture_default_str();
  cmd->add_option("--log-file", o->log_file, "append JSON log lines here instead of stderr");
  cmd->add_flag("--access-log", o->access_log, "one JSON log line per HTTP request and gRPC call");
  cmd->add_option("--model-key-store", o->model_key_store,
                  "key store for encrypted models (<version>/model.onnx.sm4); see `hearth keys`");
  cmd->add_option("--model-key-file", o->model_key_file, "a single key file for encrypted models");
  auto* tls_cert = cmd->add_option("--tls-cert", o->tls.cert_file,
                                   "PEM server certificate (chain): HTTP, gRPC and metrics speak TLS 1.2+ "
                                   "(see `hearth certs self-signed`)");
  auto* tls_key = cmd->add_option("--tls-key", o->tls.key_file, "PEM private key of --tls-cert (unencrypted)");
  auto* tls_ca = cmd->add_option("--tls-client-ca", o->tls.client_ca_file,
                                 "PEM CA: mutual TLS, every client must present a certificate it issued");
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  tls_ca->needs(tls_cert);
  add_access_flags(cmd, o->access);
  cmd->add_option("--release-store", o->release_store,
                  "SQLite file of releases (default: $HEARTH_RELEASE_STORE, else one per repository under "
                  "~/.config/hearth/releases/); off: no releases (see docs/RELEASES.md)");
  cmd->add_option("--trusted-signers", o->trusted_signers,
                  "SM2 public key (PEM) or folder of them: load only models signed by one (see `hearth sign`)");
  cmd->callback([o] {
    Status s = serve(*o);
    if (!s.ok()) report_error(s);
  });
}

}  // namespace hearth::cli
