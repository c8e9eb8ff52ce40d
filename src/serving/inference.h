// Protocol-neutral inference request/response, shared by the REST and gRPC front
// ends so both validate and behave the same way. Front ends decode their wire
// format into InferRequest (data already converted to the element type named by
// `datatype`), call InferenceServer::infer_async(), and encode the InferResponse.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hearth::serving {

// KServe v2 datatype name -> element type. BYTES is Unimplemented (the engine
// has no string tensors); unknown names are InvalidArgument.
Result<DataType> datatype_from_kserve(const std::string& name);
// Element type -> KServe v2 datatype name ("FP32"); "" for types KServe lacks.
std::string kserve_datatype(DataType type);

struct InferInput {
  std::string name;
  std::string datatype;  // KServe name, "FP32"
  Shape shape;           // as sent by the client
  Tensor data;           // flat 1-D tensor of the datatype's element type
};

inline constexpr size_t kMaxRoutingKeyBytes = 256;

struct InferRequest {
  std::string model_name;
  std::string model_version;  // "" = latest
  std::string id;             // echoed back when non-empty
  std::vector<InferInput> inputs;
  std::vector<std::string> requested_outputs;  // empty = every output
  // A release's sticky routing key (a tenant, a user): requests with the same key
  // go to the same version while the release's weights stand (rollout/). From the
  // request parameter "routing_key" or the Hearth-Routing-Key header / metadata.
  std::string routing_key;
  // Queue timeout in microseconds; 0 = the model's default_timeout_microseconds.
  uint64_t timeout_us = 0;
  // Set by the front end when the client disconnects; queued work that sees
  // it set is dropped with Cancelled. May be null.
  std::shared_ptr<std::atomic<bool>> cancelled;
};

struct InferOutput {
  std::string name;
  std::string datatype;
  Tensor data;  // shaped as the model produced it
};

struct InferResponse {
  std::string model_name;
  std::string model_version;
  std::string id;
  std::vector<InferOutput> outputs;
};

// Receives a request's answer, exactly once.
using InferCallback = std::function<void(Result<InferResponse>)>;

}  // namespace hearth::serving
