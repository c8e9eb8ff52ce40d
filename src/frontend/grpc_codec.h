// Translation between the KServe v2 / Triton gRPC messages (grpc_service.proto)
// and the protocol-neutral structs of inference.h / server.h. Free of any
// transport so it can be tested without a socket; GrpcServer is its only user.
//
// Input data arrives either typed (InferInputTensor.contents, the field that
// matches the datatype) or raw (ModelInferRequest.raw_input_contents, one
// entry per input, little-endian bytes); FP16 and BF16 only raw. Outputs are
// always answered raw (raw_output_contents), as Triton does.
#pragma once

#include <grpcpp/support/status.h>

#include "core/status.h"
#include "grpc_service.pb.h"
#include "serving/server.h"

namespace hearth::frontend {

// Status -> gRPC status, same message. InvalidArgument / Unimplemented /
// OutOfRange -> INVALID_ARGUMENT, NotFound, Unavailable, ResourceExhausted,
// DeadlineExceeded, Cancelled, FailedPrecondition -> their gRPC twins,
// everything else INTERNAL.
grpc::Status to_grpc_status(const Status& status);

// Decodes a ModelInferRequest. InvalidArgument naming the input for a bad
// datatype, shape, contents field, raw length or parameter. Does not check
// the request against the model (InferenceServer does that).
Result<serving::InferRequest> decode_infer_request(const inference::ModelInferRequest& request);

// Fills `out` with the response: metadata of each output plus its bytes in
// raw_output_contents, in the same order.
void encode_infer_response(const serving::InferResponse& response, inference::ModelInferResponse* out);

void encode_model_metadata(const serving::ModelMetadata& metadata, inference::ModelMetadataResponse* out);
void encode_model_statistics(const serving::ModelStatistics& stats, inference::ModelStatistics* out);

}  // namespace hearth::frontend
