// VersionRouter: the one place where an inference request is bound to the model
// version that serves it. InferenceServer asks its router for every request; the
// default follows Triton (the version the request names, else the highest ready
// one). A release (rollout/) installs a router of its own, swapped in atomically:
// requests in flight keep the version they were bound to.
// Thread safety: route() is called from many threads at once.
#pragma once

#include <memory>

#include "core/status.h"
#include "serving/inference.h"

namespace hearth::serving {

class ModelLifecycle;
class ModelVersion;

// Sees one bound request through: watch() runs on the caller's thread before the
// request is queued and returns the callback the version answers (it may measure
// the answer, compare it with a shadow's, or answer from another version instead),
// which must end by calling `done` exactly once.
class RequestWatch {
 public:
  virtual ~RequestWatch() = default;
  virtual InferCallback watch(const InferRequest& request, InferCallback done) = 0;
};

// What a request is bound to.
struct Binding {
  std::shared_ptr<ModelVersion> version;
  std::shared_ptr<RequestWatch> watch;  // null: nothing watches (the common case)
};

class VersionRouter {
 public:
  virtual ~VersionRouter() = default;
  // The version that serves `request`. NotFound for an unknown model or version,
  // Unavailable when none is ready.
  virtual Result<Binding> route(const InferRequest& request) const = 0;
};

// The named version, else the highest ready one.
class LatestVersionRouter final : public VersionRouter {
 public:
  explicit LatestVersionRouter(const ModelLifecycle& models) : models_(models) {}
  Result<Binding> route(const InferRequest& request) const override;

 private:
  const ModelLifecycle& models_;
};

}  // namespace hearth::serving
