// `hearth serve`: loads a Triton-style model repository and serves it over the
// KServe v2 REST protocol until SIGINT or SIGTERM. Flag names follow Triton.
#include <algorithm>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "serving/http_server.h"
#include "serving/model_repository.h"
#include "serving/rest_api.h"

namespace hearth::cli {

namespace {

struct ServeOptions {
  std::string model_repository;
  std::string http_address = "127.0.0.1";
  int http_port = 8000;
  int threads = 0;
  int http_threads = 2;
  int64_t max_body_mb = 64;
};

Status serve(const ServeOptions& o) {
  if (o.http_port < 0 || o.http_port > 65535) return invalid_argument("--http-port must be 0..65535");
  if (o.max_body_mb <= 0 || o.max_body_mb > 4096) return invalid_argument("--http-max-body-mb must be 1..4096");
  serving::RepositoryOptions ro;
  ro.total_threads = o.threads;
  HEARTH_ASSIGN_OR_RETURN(auto repository, serving::ModelRepository::open(o.model_repository, ro));
  for (const auto& m : repository->models()) {
    if (m->ready())
      std::cout << "model " << m->name << " version " << m->version << ": READY ("
                << m->session->num_threads() << " threads)\n";
    else
      std::cout << "model " << m->name << ": UNAVAILABLE: " << m->reason << "\n";
  }
  serving::RestApi api(*repository);
  serving::HttpServerOptions ho;
  ho.address = o.http_address;
  ho.port = static_cast<uint16_t>(o.http_port);
  ho.threads = std::max(1, o.http_threads);
  ho.body_limit = static_cast<size_t>(o.max_body_mb) << 20;
  serving::HttpServer server(api, ho);
  HEARTH_RETURN_IF_ERROR(server.start());
  std::cout << "listening on " << o.http_address << ":" << server.port() << " (KServe v2 REST)" << std::endl;
  server.wait_for_signal();
  std::cout << "stopped" << std::endl;
  return ok_status();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model repository over the KServe v2 REST protocol");
  cmd->add_option("--model-repository", o->model_repository, "folder of <model>/<version>/model.onnx")->required();
  cmd->add_option("--http-port", o->http_port, "HTTP port (0 = any free port)")->capture_default_str();
  cmd->add_option("--http-address", o->http_address, "address to listen on")->capture_default_str();
  cmd->add_option("--threads", o->threads, "cores shared by all models' intra-op threads (0 = all)");
  cmd->add_option("--http-thread-count", o->http_threads, "threads serving HTTP connections")->capture_default_str();
  cmd->add_option("--http-max-body-mb", o->max_body_mb, "largest request body in MiB (larger: 413)")
      ->capture_default_str();
  cmd->callback([o] {
    Status s = serve(*o);
    if (!s.ok()) report_error(s);
  });
}

}  // namespace hearth::cli
