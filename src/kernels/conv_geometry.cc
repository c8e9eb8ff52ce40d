// Window geometry for Conv, ConvTranspose and pooling (see conv_geometry.h).
#include "kernels/conv_geometry.h"

#include <algorithm>

#include "core/checked_math.h"

namespace hearth {
namespace {

// Window attributes beyond this are refused: no real model comes near, and the
// geometry's products of two such values and a dim then stay far from overflow.
constexpr int64_t kMaxWindowValue = (int64_t{1} << 31) - 1;

Status check_positive(const Node& node, const char* name, const std::vector<int64_t>& v) {
  for (int64_t x : v) {
    if (x <= 0) return invalid_argument(node.describe(), ": ", name, " must be positive, got ", x);
    if (x > kMaxWindowValue)
      return invalid_argument(node.describe(), ": ", name, " value ", x, " is over the limit of ", kMaxWindowValue);
  }
  return ok_status();
}

// Overflow-checked arithmetic for one geometry computation: the first overflow is
// remembered and reported once by `status`.
struct GeometryMath {
  bool overflow = false;
  int64_t mul(int64_t a, int64_t b) {
    int64_t r = 0;
    overflow = overflow || mul_overflows(a, b, &r);
    return r;
  }
  int64_t add(int64_t a, int64_t b) {
    int64_t r = 0;
    overflow = overflow || add_overflows(a, b, &r);
    return r;
  }
  Status status(const Node& node, size_t dim) const {
    if (!overflow) return ok_status();
    return invalid_argument(node.describe(), ": the window geometry of spatial dim ", dim,
                            " overflows 64 bits (kernel, strides, dilations, pads or input size too large)");
  }
};

// Fills `v` with `def` when empty; otherwise checks it has `rank` entries.
Status fill_or_check(const Node& node, const char* name, std::vector<int64_t>* v, size_t rank, int64_t def) {
  if (v->empty()) {
    v->assign(rank, def);
    return ok_status();
  }
  if (v->size() != rank)
    return invalid_argument(node.describe(), ": ", name, " has ", v->size(), " values but the input has ", rank,
                            " spatial dims");
  return ok_status();
}

Status fill_common(const WindowAttrs& attrs, const std::vector<int64_t>& in_spatial,
                   const std::vector<int64_t>& kernel, const Node& node, Window* w) {
  const size_t rank = in_spatial.size();
  if (rank == 0) return invalid_argument(node.describe(), ": input needs at least one spatial dim");
  if (kernel.size() != rank)
    return invalid_argument(node.describe(), ": kernel has ", kernel.size(), " spatial dims but the input has ",
                            rank);
  HEARTH_RETURN_IF_ERROR(check_positive(node, "kernel_shape", kernel));
  w->in = in_spatial;
  w->kernel = kernel;
  w->strides = attrs.strides;
  w->dilations = attrs.dilations;
  HEARTH_RETURN_IF_ERROR(fill_or_check(node, "strides", &w->strides, rank, 1));
  HEARTH_RETURN_IF_ERROR(fill_or_check(node, "dilations", &w->dilations, rank, 1));
  std::vector<int64_t> pads = attrs.pads;
  HEARTH_RETURN_IF_ERROR(fill_or_check(node, "pads", &pads, 2 * rank, 0));
  w->pad_begin.assign(pads.begin(), pads.begin() + rank);
  w->pad_end.assign(pads.begin() + rank, pads.end());
  w->out.assign(rank, 0);
  return ok_status();
}

int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

Status parse_window_attrs(const Node& node, WindowAttrs* attrs) {
  const std::string pad = node.attr_string("auto_pad", "NOTSET");
  if (pad == "NOTSET" || pad.empty()) attrs->auto_pad = AutoPad::kNotSet;
  else if (pad == "SAME_UPPER") attrs->auto_pad = AutoPad::kSameUpper;
  else if (pad == "SAME_LOWER") attrs->auto_pad = AutoPad::kSameLower;
  else if (pad == "VALID") attrs->auto_pad = AutoPad::kValid;
  else return invalid_argument(node.describe(), ": unknown auto_pad '", pad, "'");
  attrs->kernel_shape = node.attr_ints("kernel_shape");
  attrs->strides = node.attr_ints("strides");
  attrs->dilations = node.attr_ints("dilations");
  attrs->pads = node.attr_ints("pads");
  attrs->ceil_mode = node.attr_int("ceil_mode", 0) != 0;
  HEARTH_RETURN_IF_ERROR(check_positive(node, "kernel_shape", attrs->kernel_shape));
  HEARTH_RETURN_IF_ERROR(check_positive(node, "strides", attrs->strides));
  HEARTH_RETURN_IF_ERROR(check_positive(node, "dilations", attrs->dilations));
  for (int64_t p : attrs->pads) {
    if (p < 0) return invalid_argument(node.describe(), ": pads must be non-negative, got ", p);
    if (p > kMaxWindowValue)
      return invalid_argument(node.describe(), ": pads value ", p, " is over the limit of ", kMaxWindowValue);
  }
  if (attrs->pads.size() % 2 != 0)
    return invalid_argument(node.describe(), ": pads must have an even number of values, got ", attrs->pads.size());
  return ok_status();
}

Result<Window> resolve_window(const WindowAttrs& attrs, const std::vector<int64_t>& in_spatial,
                              const std::vector<int64_t>& kernel, const Node& node) {
  Window w;
  HEARTH_RETURN_IF_ERROR(fill_common(attrs, in_spatial, kernel, node, &w));
  for (size_t i = 0; i < w.rank(); ++i) {
    GeometryMath m;
    const int64_t dk = m.add(m.mul(w.kernel[i] - 1, w.dilations[i]), 1);
    const int64_t s = w.strides[i];
    if (attrs.auto_pad == AutoPad::kSameUpper || attrs.auto_pad == AutoPad::kSameLower) {
      w.out[i] = ceil_div(w.in[i], s);
      const int64_t total = std::max<int64_t>(0, m.add(m.mul(w.out[i] - 1, s), dk) - w.in[i]);
      HEARTH_RETURN_IF_ERROR(m.status(node, i));
      const int64_t small = total / 2;
      w.pad_begin[i] = attrs.auto_pad == AutoPad::kSameUpper ? small : total - small;
      w.pad_end[i] = total - w.pad_begin[i];
      continue;
    }
    if (attrs.auto_pad == AutoPad::kValid) w.pad_begin[i] = w.pad_end[i] = 0;
    const int64_t padded = m.add(m.add(w.in[i], w.pad_begin[i]), w.pad_end[i]);
    const int64_t span = padded - dk;
    HEARTH_RETURN_IF_ERROR(m.status(node, i));
    if (span < 0)
      return invalid_argument(node.describe(), ": kernel extent ", dk, " exceeds padded input size ", padded,
                              " on spatial dim ", i);
    w.out[i] = (attrs.ceil_mode ? ceil_div(span, s) : floor_div(span, s)) + 1;
    // A window must start inside the input or the begin padding (as ONNX Runtime and PyTorch do).
    if (attrs.ceil_mode && m.mul(w.out[i] - 1, s) >= w.in[i] + w.pad_begin[i]) --w.out[i];
    HEARTH_RETURN_IF_ERROR(m.status(node, i));
  }
  return w;
}

Result<Window> resolve_transpose_window(const WindowAttrs& attrs, const std::vector<int64_t>& output_padding,
                                        const std::vector<int64_t>& output_shape,
                                        const std::vector<int64_t>& in_spatial,
                                        const std::vector<int64_t>& kernel, const Node& node) {
  Window w;
  HEARTH_RETURN_IF_ERROR(fill_common(attrs, in_spatial, kernel, node, &w));
  std::vector<int64_t> op = output_padding;
  HEARTH_RETURN_IF_ERROR(fill_or_check(node, "output_padding", &op, w.rank(), 0));
  if (!output_shape.empty() && output_shape.size() != w.rank())
    return invalid_argument(node.describe(), ": output_shape has ", output_shape.size(),
                            " values but the input has ", w.rank(), " spatial dims");
  for (size_t i = 0; i < w.rank(); ++i) {
    if (op[i] < 0 || op[i] > kMaxWindowValue)
      return invalid_argument(node.describe(), ": output_padding must be in [0, ", kMaxWindowValue, "], got ", op[i]);
    if (!output_shape.empty() && (output_shape[i] < 0 || output_shape[i] > kMaxWindowValue * 1024))
      return invalid_argument(node.describe(), ": output_shape value ", output_shape[i], " is out of range");
    GeometryMath m;
    const int64_t dk = m.add(m.mul(w.kernel[i] - 1, w.dilations[i]), 1);
    const int64_t full = m.add(m.add(m.mul(w.strides[i], w.in[i] - 1), op[i]), dk);
    const bool same = attrs.auto_pad == AutoPad::kSameUpper || attrs.auto_pad == AutoPad::kSameLower;
    const int64_t same_out = m.mul(w.in[i], w.strides[i]);
    HEARTH_RETURN_IF_ERROR(m.status(node, i));
    if (!output_shape.empty() || same) {
      w.out[i] = !output_shape.empty() ? output_shape[i] : same_out;
      const int64_t total = std::max<int64_t>(0, full - w.out[i]);
      const int64_t small = total / 2;
      // SAME_LOWER puts the odd pad at the beginning; SAME_UPPER and explicit
      // output_shape (as ONNX Runtime) put it at the end.
      w.pad_begin[i] = attrs.auto_pad == AutoPad::kSameLower ? total - small : small;
      w.pad_end[i] = total - w.pad_begin[i];
    } else {
      if (attrs.auto_pad == AutoPad::kValid) w.pad_begin[i] = w.pad_end[i] = 0;
      w.out[i] = full - w.pad_begin[i] - w.pad_end[i];
    }
    if (w.out[i] <= 0)
      return invalid_argument(node.describe(), ": output size ", w.out[i], " on spatial dim ", i,
                              " is not positive");
    // Net end padding: what the scatter must crop at the end (negative = extra zeros/space).
    w.pad_end[i] = (full - op[i]) - w.pad_begin[i] - w.out[i];
  }
  return w;
}

Window3 to_window3(const Window& w) {
  Window3 r;
  const size_t rank = w.rank();
  const size_t off = 3 - rank;
  for (size_t i = 0; i < 3; ++i) {
    const bool real = i >= off;
    const size_t j = real ? i - off : 0;
    r.in[i] = real ? w.in[j] : 1;
    r.out[i] = real ? w.out[j] : 1;
    r.k[i] = real ? w.kernel[j] : 1;
    r.s[i] = real ? w.strides[j] : 1;
    r.d[i] = real ? w.dilations[j] : 1;
    r.pb[i] = real ? w.pad_begin[j] : 0;
    r.pe[i] = real ? w.pad_end[j] : 0;
  }
  return r;
}

}  // namespace hearth
