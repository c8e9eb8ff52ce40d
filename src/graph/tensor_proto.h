// TensorProto <-> Tensor conversion. Includes libonnx's protobuf header, so it
// is for the graph layer and tools only; kernels never see ONNX types.
#pragma once

#include <onnx/onnx_pb.h>

#include <string>

#include "core/status.h"
#include "core/tensor.h"
#include "graph/external_data.h"

namespace hearth {

// Converts a TensorProto. Data may be in raw_data, the typed fields, or an
// external file (resolved against base_dir, which must contain it; "" forbids
// external data). The data size must equal dims x element size.
Result<Tensor> tensor_from_proto(const onnx::TensorProto& tp, const std::string& base_dir);
// The same with external data from disk or memory (see external_data.h). An
// in-memory location must be one of `files` exactly: relative, no "..".
Result<Tensor> tensor_from_proto(const onnx::TensorProto& tp, const ExternalData& external);

// As above, but a large raw_data payload is moved out of `tp` into the tensor
// (no copy; the tensor then owns the bytes, 16-byte aligned rather than 64).
Result<Tensor> take_tensor_from_proto(onnx::TensorProto* tp, const ExternalData& external);

// Writes `t` into `tp` using raw_data.
void tensor_to_proto(const Tensor& t, const std::string& name, onnx::TensorProto* tp);

}  // namespace hearth
