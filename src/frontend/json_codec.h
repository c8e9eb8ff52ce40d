// KServe v2 REST inference bodies: JSON (RapidJSON) plus Triton's binary
// tensor data extension, where the body is a JSON header of
// Inference-Header-Content-Length bytes followed by raw little-endian tensor
// bytes (docs/protocol/extension_binary_data.md in triton-inference-server/server).
// Decoding is bounded by the body size (no input can make us allocate more
// than the body holds) and never crashes on any bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "serving/inference.h"

namespace hearth::frontend {

struct DecodedInferRequest {
  serving::InferRequest request;                     // inputs decoded (JSON data or binary), id, outputs, timeout_us
  bool binary_data_output = false;          // request "parameters": {"binary_data_output": true}
  std::vector<std::string> binary_outputs;  // outputs asking {"parameters": {"binary_data": true}}
  std::vector<std::string> json_outputs;    // outputs asking {"parameters": {"binary_data": false}}
};

// Decodes an inference request for model `name`/`version` ("" = latest).
// `body` is the whole HTTP body; `header_length` the Inference-Header-Content-Length
// value, or nullopt when that header is absent (then the body is all JSON and no
// input may use binary_data_size). With it, body[0, header_length) is the JSON and
// the rest is the binary data of the inputs that carry "parameters":
// {"binary_data_size": N}, in input order; the sizes must add up to exactly the
// remaining bytes and each must equal shape product x element size (BOOL = 1).
// Each input has either "data" (flat or nested, row-major, range-checked) or
// binary_data_size. Request parameter "timeout" (integer microseconds) sets
// timeout_us; unknown parameters are ignored. InvalidArgument naming the input and
// what disagrees; Unimplemented for BYTES. Thread safe.
Result<DecodedInferRequest> decode_infer_request(std::string_view body, std::optional<size_t> header_length,
                                                 const std::string& name, const std::string& version);

struct EncodedInferResponse {
  std::string body;                     // JSON, followed by the binary outputs when header_length is set
  std::optional<size_t> header_length;  // set when at least one output is binary: the JSON part's length
                                        // (Inference-Header-Content-Length; content type application/octet-stream)
};

// Output i is binary when its name is in how.binary_outputs, or when
// how.binary_data_output is set and it is not in how.json_outputs. Binary outputs
// carry "parameters": {"binary_data_size": N} and no "data"; their raw
// little-endian bytes follow the JSON in output order. JSON outputs have flat
// "data"; floats are written shortest round-trip for their own width (an FP32
// value reads back as the same float), NaN and infinities as NaN / Infinity.
EncodedInferResponse encode_infer_response(const serving::InferResponse& response, const DecodedInferRequest& how);

// The JSON object {"error": message}, with message escaped.
std::string encode_error(const std::string& message);

}  // namespace hearth::frontend
