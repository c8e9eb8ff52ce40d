// JSON encoding of KServe v2 REST inference requests and responses (RapidJSON).
// Tensor data may be flat or nested arrays in row-major order; values are
// range-checked against the declared datatype.
#pragma once

#include <string>

#include "core/status.h"
#include "serving/inference.h"

namespace hearth::serving {

// Parses an inference request body for model `name`/`version` ("" = latest).
// InvalidArgument for malformed JSON, missing fields, values that do not fit
// the datatype; Unimplemented for BYTES.
Result<InferRequest> decode_infer_request(const std::string& body, const std::string& name,
                                          const std::string& version);

// {"model_name", "model_version", "id"?, "outputs": [{"name","datatype","shape","data"}]}
// with flat data; NaN and infinities are written as NaN / Infinity.
std::string encode_infer_response(const InferResponse& response);

// The JSON object {"error": message}, escaped by RapidJSON.
std::string encode_error(const std::string& message);

}  // namespace hearth::serving
