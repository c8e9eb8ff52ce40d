// InferenceServer: glues the ModelLifecycle, the version router and the metrics
// registry into the protocol-neutral API of server.h.
#include "serving/server.h"

#include <atomic>
#include <future>
#include <mutex>

#include "repository/model_config.h"
#include "repository/model_upload.h"
#include "serving/model_lifecycle.h"
#include "serving/version_router.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "telemetry/process_metrics.h"

namespace hearth::serving {

using repository::dtype_from_config;
using repository::kPlatform;
using repository::request_shape;

namespace {

constexpr const char* kServerName = "hearth";
constexpr const char* kServerVersion = "0.1.0";

std::vector<TensorMetadata> tensor_metadata(const inference::ModelConfig& config, bool inputs) {
  std::vector<TensorMetadata> out;
  auto add = [&](const std::string& name, inference::DataType type, const auto& dims) {
    auto dtype = dtype_from_config(type);
    out.push_back({name, dtype.ok() ? kserve_datatype(*dtype) : inference::DataType_Name(type),
                   request_shape(config, dims)});
  };
  if (inputs)
    for (const auto& t : config.input()) add(t.name(), t.data_type(), t.dims());
  else
    for (const auto& t : config.output()) add(t.name(), t.data_type(), t.dims());
  return out;
}

}  // namespace

Result<ModelControlMode> parse_model_control_mode(const std::string& text) {
  if (text == "none") return ModelControlMode::kNone;
  if (text == "poll") return ModelControlMode::kPoll;
  if (text == "explicit") return ModelControlMode::kExplicit;
  return invalid_argument("--model-control-mode '", text, "' is not one of none, poll, explicit");
}

struct InferenceServer::Impl {
  ServerOptions options;
  telemetry::Registry registry;
  std::unique_ptr<ModelLifecycle> models;
  // Binds each request to a version; swapped whole (a release installs its own).
  std::atomic<std::shared_ptr<const VersionRouter>> router;
  std::mutex upload_mu;  // one upload writes to the repository at a time
};

InferenceServer::InferenceServer() : impl_(std::make_unique<Impl>()) {}

InferenceServer::~InferenceServer() {
  if (impl_->models) impl_->models->shutdown();
}

Result<std::unique_ptr<InferenceServer>> InferenceServer::create(const ServerOptions& options) {
  std::unique_ptr<InferenceServer> server(new InferenceServer());
  server->impl_->options = options;
  telemetry::register_process_metrics(server->impl_->registry);
  HEARTH_ASSIGN_OR_RETURN(server->impl_->models, ModelLifecycle::open(options, &server->impl_->registry));
  server->impl_->router.store(std::make_shared<const LatestVersionRouter>(*server->impl_->models));
  return server;
}

bool InferenceServer::live() const { return true; }

bool InferenceServer::ready() const { return impl_->models->ready(); }

ServerMetadata InferenceServer::server_metadata() const {
  // Triton's names for the protocol extensions Hearth implements.
  return {kServerName, kServerVersion,
          {"binary_tensor_data", "model_repository", "model_configuration", "statistics", "schedule_policy"}};
}

Result<ModelMetadata> InferenceServer::model_metadata(const std::string& name, const std::string& version) const {
  std::vector<std::shared_ptr<ModelVersion>> versions;
  if (version.empty()) {
    HEARTH_ASSIGN_OR_RETURN(versions, impl_->models->versions(name));
    if (versions.empty()) {
      HEARTH_ASSIGN_OR_RETURN(auto v, impl_->models->find(name, ""));  // the reason it is not ready
      versions.push_back(v);
    }
  } else {
    HEARTH_ASSIGN_OR_RETURN(auto v, impl_->models->find(name, version));
    versions.push_back(v);
  }
  const ModelVersion& latest = *versions.back();
  ModelMetadata m;
  m.name = name;
  for (const auto& v : versions) m.versions.push_back(std::to_string(v->version()));
  m.platform = kPlatform;
  m.inputs = tensor_metadata(latest.config(), true);
  m.outputs = tensor_metadata(latest.config(), false);
  return m;
}

Result<bool> InferenceServer::model_ready(const std::string& name, const std::string& version) const {
  auto v = impl_->models->find(name, version);
  if (v.ok()) return true;
  if (v.status().code() == StatusCode::kUnavailable) return false;
  return v.status();
}

Result<inference::ModelConfig> InferenceServer::model_config(const std::string& name, const std::string& version) const {
  HEARTH_ASSIGN_OR_RETURN(auto v, impl_->models->find(name, version));
  return v->config();
}

Result<std::vector<ModelStatistics>> InferenceServer::model_statistics(const std::string& name,
                                                                       const std::string& version) const {
  std::vector<std::shared_ptr<ModelVersion>> versions;
  if (name.empty()) {
    if (!version.empty()) return invalid_argument("statistics for a version need a model name");
    versions = impl_->models->all_versions();
  } else if (version.empty()) {
    HEARTH_ASSIGN_OR_RETURN(versions, impl_->models->versions(name));
  } else {
    HEARTH_ASSIGN_OR_RETURN(auto v, impl_->models->find(name, version));
    versions.push_back(v);
  }
  std::vector<ModelStatistics> out;
  for (const auto& v : versions) out.push_back(v->statistics());
  return out;
}

std::vector<ModelIndexEntry> InferenceServer::repository_index(bool ready_only) const {
  return impl_->models->index(ready_only);
}

Status InferenceServer::load_model(const std::string& name) {
  if (impl_->options.control_mode != ModelControlMode::kExplicit)
    return Status(StatusCode::kFailedPrecondition,
                  "explicit model load / unload is not allowed: start with --model-control-mode=explicit");
  return impl_->models->load(name);
}

Status InferenceServer::load_model(const std::string& name, const repository::ModelUpload& upload) {
  if (upload.empty()) return load_model(name);
  if (impl_->options.control_mode != ModelControlMode::kExplicit)
    return Status(StatusCode::kFailedPrecondition,
                  "model upload is not allowed: start with --model-control-mode=explicit");
  std::lock_guard<std::mutex> lock(impl_->upload_mu);
  HEARTH_ASSIGN_OR_RETURN(repository::UploadReceipt receipt, repository::write_upload(impl_->options.model_repository, name, upload));
  telemetry::log_info("model_uploaded", {telemetry::field("model", name),
                                         telemetry::field("versions", static_cast<int64_t>(receipt.versions.size())),
                                         telemetry::field("config", receipt.config_written ? "written" : "kept")});
  Status loaded = impl_->models->load(name, ModelLifecycle::Source::kUpload);
  if (loaded.ok()) return loaded;
  bool uploaded_failed = receipt.versions.empty();  // a config alone: its load failed
  for (int64_t v : receipt.versions)
    uploaded_failed = uploaded_failed || !impl_->models->find(name, std::to_string(v)).ok();
  if (!uploaded_failed) return loaded;  // an older version's problem; the upload itself serves
  Status undone = repository::undo_upload(receipt);
  telemetry::log_warn("model_upload_rolled_back",
                      {telemetry::field("model", name), telemetry::field("error", loaded.message()),
                       telemetry::field("rollback", undone.ok() ? "ok" : undone.message())});
  // What serves goes back to the previous config (versions loaded with the
  // uploaded one reload); a new model's folder is gone, its failure stays in the index.
  if (receipt.config_written && !receipt.created_model) (void)impl_->models->load(name);
  // The uploaded files are what failed: a bad request (HTTP 400), not "try again later".
  return Status(StatusCode::kInvalidArgument, str_cat(loaded.message(), " (the upload was rolled back",
                                       undone.ok() ? "" : ": " + undone.message(), ")"));
}

Status InferenceServer::unload_model(const std::string& name) {
  if (impl_->options.control_mode != ModelControlMode::kExplicit)
    return Status(StatusCode::kFailedPrecondition,
                  "explicit model load / unload is not allowed: start with --model-control-mode=explicit");
  return impl_->models->unload(name);
}

void InferenceServer::infer_async(InferRequest request, InferCallback done) {
  auto bound = impl_->router.load()->route(request);  // the one place a request meets a version
  if (!bound.ok()) return done(bound.status());
  if (bound->watch) done = bound->watch->watch(request, std::move(done));
  bound->version->submit(std::move(request), std::move(done));
}

Result<std::shared_ptr<ModelVersion>> InferenceServer::find_version(const std::string& name,
                                                                    const std::string& version) const {
  return impl_->models->find(name, version);
}

Status InferenceServer::pin_versions(const std::string& name, repository::VersionPins pins) {
  return impl_->models->pin(name, std::move(pins));
}

void InferenceServer::set_version_router(std::shared_ptr<const VersionRouter> router) {
  impl_->router.store(router ? std::move(router) : std::make_shared<const LatestVersionRouter>(*impl_->models));
}

Result<InferResponse> InferenceServer::infer(InferRequest request) {
  auto promise = std::make_shared<std::promise<Result<InferResponse>>>();
  auto future = promise->get_future();
  infer_async(std::move(request), [promise](Result<InferResponse> r) { promise->set_value(std::move(r)); });
  return future.get();
}

telemetry::Registry& InferenceServer::metrics() { return impl_->registry; }

}  // namespace hearth::serving
