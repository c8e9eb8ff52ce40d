// The inference calls of the gRPC front end: one ModelInfer that waits for
// InferenceServer while watching for the client to go away, and the
// ModelStreamInfer pipeline. Internal to GrpcServer (grpc_server.cc).
#pragma once

#include <functional>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>

#include "grpc_service.grpc.pb.h"
#include "serving/server.h"

namespace hearth::frontend {

// Decodes `in`, runs it through server.infer_async and waits for the answer.
// Every 5 ms it checks whether the call was cancelled (client disconnect,
// cancel or deadline); then the request is flagged cancelled, so queued work
// is dropped, and Cancelled / DeadlineExceeded comes back at once.
Status infer_unary(serving::InferenceServer& server, grpc::ServerContext* context, const inference::ModelInferRequest& in,
                   inference::ModelInferResponse* out);

// Serves one ModelStreamInfer call. Requests are read and queued as they
// arrive (so a stream's requests can be batched together, at most
// kMaxStreamInFlight at a time) and answered in the order they came; a failed
// request is answered with error_message (plus its model name, version and id)
// and the stream goes on. Returns when the client half-closes and every
// answer is written, or when the call is cancelled.
// `admit`, when set, is asked about each request before it runs (access
// control per model); a refusal is that request's error_message.
constexpr size_t kMaxStreamInFlight = 64;
using StreamAdmit = std::function<Status(const inference::ModelInferRequest&)>;
Status serve_infer_stream(
    serving::InferenceServer& server, grpc::ServerContext* context,
    grpc::ServerReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>* stream,
    StreamAdmit admit = nullptr);

}  // namespace hearth::frontend
