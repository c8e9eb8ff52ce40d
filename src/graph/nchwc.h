// The 8-channel blocked activation layout ("NCHWc") and the graph pass that
// keeps chains of convolutions in it.
//
// oneDNN's AVX2 convolutions read and write activations as nChw8c: channels in
// blocks of 8, the 8 channels of one pixel adjacent. A plain-layout graph makes
// every convolution convert its input to that layout and its output back; for
// the cheap depthwise and 1x1 convolutions of MobileNet-style models those two
// conversions cost about as much as the convolution itself. The pass rewrites
// the graph, as ONNX Runtime's NCHWc transformer does, so that a value produced
// by a convolution stays blocked while its readers can take it so
// (convolutions, pooling, element-wise ops, channel Concat), with explicit
// ReorderInput / ReorderOutput nodes at the edges.
//
// A blocked value with logical shape [N, C, S...] (C a multiple of 8) is stored
// as an ordinary tensor of shape [N, C/8, S..., 8]. Element-wise ops and Concat
// on axis 1 then run unchanged on it. The blocked ops live in domain
// kNchwcDomain: Conv (with FusedConv's attributes and an `x_blocked` flag),
// MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReorderInput and
// ReorderOutput.
//
// The same 8-channel layout is used on every CPU. On AVX-512 oneDNN would pick
// 16-channel blocks, but a blocked convolution asks for its 8-channel layout
// explicitly (kernels/conv_dnnl.cc), and oneDNN then runs its AVX2 kernels,
// which on Zen 4 (whose AVX-512 units are 256 bits wide) were faster than its
// AVX-512 ones on plain tensors; wide layers may still run in oneDNN's own
// layout, reordered around them, where the per-layer choice finds that faster
// (kernels/path_tuner.h; docs/PERFORMANCE.md, "Results on Zen 4 (AVX-512)").
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "graph/graph.h"

namespace hearth {

inline constexpr char kNchwcDomain[] = "ai.hearth.nchwc";
inline constexpr int64_t kNchwcBlock = 8;

// [N, C, S...] -> [N, C/8, S..., 8]; C must be a multiple of 8.
Shape nchwc_blocked_shape(const Shape& logical);
// [N, C/8, S..., 8] -> [N, C, S...]; fails unless the shape has rank >= 3 and
// a last dim of 8.
Result<Shape> nchwc_logical_shape(const Shape& blocked);

// Rewrites `model` to use the blocked layout where it pays (see above).
// Returns the number of nodes that now run on blocked values.
Result<int> apply_nchwc_layout(Model& model);

}  // namespace hearth
