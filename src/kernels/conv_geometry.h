// Window geometry shared by Conv, ConvTranspose and the pooling ops: parsing of
// kernel_shape / strides / dilations / pads / auto_pad and the resolution of
// output sizes and effective pads for a concrete input shape.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "graph/graph.h"

namespace hearth {

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// Attributes as written on the node. Empty vectors mean "not given".
struct WindowAttrs {
  AutoPad auto_pad = AutoPad::kNotSet;
  std::vector<int64_t> kernel_shape;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;  // [begin_0.., end_0..]
  bool ceil_mode = false;
};

// Reads the window attributes of `node`; validates values that do not depend
// on the input shape (positive strides/dilations, non-negative pads, auto_pad).
Status parse_window_attrs(const Node& node, WindowAttrs* attrs);

// Fully resolved geometry for one spatial rank (1..3 dims in practice).
struct Window {
  std::vector<int64_t> in, out, kernel, strides, dilations, pad_begin, pad_end;
  size_t rank() const { return in.size(); }
};

// Resolves output sizes and pads for a forward window op (Conv, pooling).
// `kernel` is the spatial kernel shape (from the attribute or the weights).
// Fails (invalid_argument naming the node) on inconsistent ranks or an empty output.
Result<Window> resolve_window(const WindowAttrs& attrs, const std::vector<int64_t>& in_spatial,
                              const std::vector<int64_t>& kernel, const Node& node);

// Resolves ConvTranspose geometry: output_padding / output_shape / auto_pad.
// Pads may come out so that out = (in-1)*s + dk - pad_begin - pad_end + output_padding.
// `out` is set; pad_end is reported net of output_padding (may be negative).
Result<Window> resolve_transpose_window(const WindowAttrs& attrs, const std::vector<int64_t>& output_padding,
                                        const std::vector<int64_t>& output_shape,
                                        const std::vector<int64_t>& in_spatial,
                                        const std::vector<int64_t>& kernel, const Node& node);

// Window padded to 3 spatial dims (leading dims of size 1) for the reference loops.
struct Window3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
};
Window3 to_window3(const Window& w);

}  // namespace hearth
