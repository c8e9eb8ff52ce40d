// ONNX import: ModelProto (libonnx's protobuf classes) -> hearth::Model.
// Validates as it goes; every error names what is wrong and where (tensor,
// node, file). External data is read from files beside the model and may not
// leave the model's folder.
#pragma once

#include <string>

#include "core/status.h"
#include "core/tensor.h"
#include "graph/external_data.h"
#include "graph/graph.h"

namespace hearth {

// Highest default-domain opset the importer accepts.
constexpr int64_t kMaxSupportedOpset = 17;

// Reads and imports a model file. External data is resolved against the file's folder.
Result<Model> load_model_file(const std::string& path);

// Imports a serialized ModelProto held in memory (for example after decryption).
// `base_dir` is the folder external data is read from; "" forbids external data.
Result<Model> load_model_bytes(const void* data, size_t size, const std::string& base_dir);
// The same with external data from disk or from memory (an opened encrypted
// package: the weights never touch the disk).
Result<Model> load_model_bytes(const void* data, size_t size, const ExternalData& external);

// Parses a serialized TensorProto (the ONNX test-data .pb format).
Result<Tensor> parse_tensor_proto(const void* data, size_t size);
Result<Tensor> load_tensor_proto_file(const std::string& path);
// Serializes a tensor as TensorProto bytes (raw_data form).
std::string serialize_tensor_proto(const Tensor& t, const std::string& name);

}  // namespace hearth
