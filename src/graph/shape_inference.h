// Import-time checks of each node against its ONNX schema, and type and shape
// inference driven by Hearth one node at a time (as ONNX Runtime does) rather than
// by libonnx's InferShapes over the whole model.
//
// A model file is untrusted, and libonnx 1.12's per-op inference functions assume
// what its checker would have verified: they divide by a zero stride or a wrapped
// blocksize, and read dims past an input's rank (Conv of a rank-2 input, ConvTranspose
// of rank-1 weights, LayerNormalization of a scalar). Driving them ourselves lets the
// importer (1) refuse nodes that break their schema (arity, attribute types, required
// attributes), (2) call an inference function only with every input's type known,
// dims at most kMaxInferredDim and constant inputs small and in range, and (3) skip
// the nodes whose inputs break the assumptions listed in shape_inference.cc. A skipped
// node only loses inferred shapes (the optimizer then leaves it alone); the kernels
// check everything again when they bind and run.
#pragma once

#include <string>

#include "core/status.h"
#include "graph/graph.h"

namespace onnx {
class NodeProto;
class GraphProto;
}  // namespace onnx

namespace hearth {

// Dims above this are passed to libonnx's inference as unknown, so its arithmetic
// on them cannot overflow.
constexpr int64_t kMaxInferredDim = int64_t{1} << 31;

// Checks `np` (op `np.op_type()` at the model's `opsets`) against its ONNX schema:
// input and output counts, attribute names, types and required attributes. Nodes of
// domains without schemas here, and ops without a schema at that opset, pass (the
// kernel lookup reports those). Nodes in Hearth's own domains (ai.hearth*), which only
// the optimizer may create, are refused.
Status check_node_schema(const onnx::NodeProto& np, const std::map<std::string, int64_t>& opsets);

// Fills g.value_info with the types and shapes ONNX's inference functions give the
// values of `gp`'s top level that `g` declares none for. `g` is `gp` converted
// (its inputs, initializers and declared value_info are read from it). Never fails:
// what cannot be inferred safely is left out.
void infer_value_info(const onnx::GraphProto& gp, const std::map<std::string, int64_t>& opsets, Graph& g);

}  // namespace hearth
