#include "serving/version_router.h"

#include "serving/model_lifecycle.h"

namespace hearth::serving {

Result<std::shared_ptr<ModelVersion>> LatestVersionRouter::route(const InferRequest& request) const {
  return models_.find(request.model_name, request.model_version);
}

}  // namespace hearth::serving
