// Protocol-neutral inference request/response, shared by the HTTP (and later
// gRPC) front ends so both validate and behave the same way. Front ends decode
// their wire format into InferRequest (data already converted to the element
// type named by `datatype`), call infer(), and encode the InferResponse.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "serving/model_repository.h"

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

struct InferRequest {
  std::string model_name;
  std::string model_version;  // "" = latest
  std::string id;             // echoed back when non-empty
  std::vector<InferInput> inputs;
  std::vector<std::string> requested_outputs;  // empty = every output
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

// Checks a request against the model: every input known, present once and
// every model input fed; datatype equal to the model's; shape non-negative,
// of the model's rank, matching fixed dims, and agreeing with the data length;
// requested outputs known. InvalidArgument with a message naming the input.
Status validate_request(const InferRequest& request, const Session& session);

// Validates and runs `request` on the model; NotFound for an unknown model or
// version, Unavailable for a model that did not load. Thread safe.
Result<InferResponse> infer(const ModelRepository& repository, const InferRequest& request);

}  // namespace hearth::serving
