// Graph rewrites that keep results identical (within float rounding) and make
// execution cheaper. Run by Session::create unless SessionOptions::optimize is off.
//   - Conv + BatchNormalization (inference, constant parameters) -> Conv with folded weights
//   - Conv [+ Add of a same-shaped tensor] [+ activation] -> com.microsoft FusedConv,
//     which runs the addition and activation as oneDNN post-ops
//   - LayerNormalization spelled out as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div
//     [* gamma] [+ beta] (exports before opset 17) -> ai.hearth LayerNormalization
//   - MatMul with constant weights [+ Add of a bias] [+ GELU in its erf form]
//     -> ai.hearth FusedMatMul, one oneDNN matmul with bias and a GELU post-op
//   - with `blocked_layout`, the 8-channel blocked layout between convolutions
//     (graph/nchwc.h)
#pragma once

#include "core/status.h"
#include "graph/graph.h"

namespace hearth {

struct OptimizerStats {
  int conv_bn_folded = 0;
  int conv_fused = 0;
  int nchwc_nodes = 0;  // nodes that run on blocked-layout values
  int matmul_fused = 0;  // MatMul [+ bias] [+ GELU] -> ai.hearth FusedMatMul
  int layer_norm_fused = 0;  // spelled-out LayerNormalization -> ai.hearth LayerNormalization
};

Result<OptimizerStats> optimize_graph(Model& model, bool blocked_layout = true);

// A QDQ model's Conv (QuantizeLinear -> DequantizeLinear on a uint8 input, and
// DequantizeLinear of int8 constant weights) -> ai.hearth QDQConv, run as one
// int8 convolution (kernels/qdq_conv.cc). Run before constant folding, which
// would fold the weights' DequantizeLinear into floats. Returns the count.
int fuse_qdq_convolutions(Model& model);

}  // namespace hearth
