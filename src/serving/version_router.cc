#include "serving/version_router.h"

#include "serving/model_lifecycle.h"

namespace hearth::serving {

Result<Binding> LatestVersionRouter::route(const InferRequest& request) const {
  HEARTH_ASSIGN_OR_RETURN(auto version, models_.find(request.model_name, request.model_version));
  return Binding{std::move(version), nullptr};
}

}  // namespace hearth::serving
