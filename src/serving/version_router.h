// VersionRouter: the one place where an inference request is bound to the model
// version that serves it. InferenceServer asks its router for every request; the
// default follows Triton (the version the request names, else the highest ready
// one). A release (canary, shadow, pinning) installs a router of its own, swapped in
// atomically: requests in flight keep the version they were bound to.
// Thread safety: route() is called from many threads at once.
#pragma once

#include <memory>

#include "core/status.h"
#include "serving/inference.h"

namespace hearth::serving {

class ModelLifecycle;
class ModelVersion;

class VersionRouter {
 public:
  virtual ~VersionRouter() = default;
  // The version that serves `request`. NotFound for an unknown model or version,
  // Unavailable when none is ready.
  virtual Result<std::shared_ptr<ModelVersion>> route(const InferRequest& request) const = 0;
};

// The named version, else the highest ready one.
class LatestVersionRouter final : public VersionRouter {
 public:
  explicit LatestVersionRouter(const ModelLifecycle& models) : models_(models) {}
  Result<std::shared_ptr<ModelVersion>> route(const InferRequest& request) const override;

 private:
  const ModelLifecycle& models_;
};

}  // namespace hearth::serving
