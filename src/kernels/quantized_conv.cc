// Kernel family: quantized, convolution part. ConvInteger (int32 output) and
// QLinearConv (per-tensor or per-channel weight scale / zero point, int32 bias,
// requantized output), N-D with groups, pads / auto_pad, strides, dilations.
// Reference path: im2row of (x - x_zero_point) with padding contributing 0
// (ONNX pads with the zero point), then the exact integer GEMM (qgemm_nt) per group.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "kernels/conv_geometry.h"
#include "kernels/kernel.h"
#include "kernels/quantized_common.h"

namespace hearth {
namespace {

struct ConvGeometry {
  int64_t N = 0, C = 0, M = 0, group = 1, Cg = 0, Mg = 0;
  Shape in_sp, k_sp, out_sp;
  std::vector<int64_t> strides, dilations, pad_begin;
  int64_t in_size = 1, k_size = 1, out_size = 1;
};

// The window attributes, parsed and validated by the shared Conv geometry
// (conv_geometry.h), plus group.
struct ConvAttrs {
  WindowAttrs window;
  int64_t group = 1;

  Status parse(const Node& n) {
    group = n.attr_int("group", 1);
    if (group <= 0) return invalid_argument(n.describe(), ": group must be positive, got ", group);
    return parse_window_attrs(n, &window);
  }
};

Result<ConvGeometry> conv_geometry(const ConvAttrs& at, const Shape& xs, const Shape& ws, const Node& node) {
  if (xs.size() < 3 || ws.size() != xs.size())
    return invalid_argument(node.describe(), ": x ", shape_str(xs), " and w ", shape_str(ws),
                            " must have the same rank >= 3");
  ConvGeometry g;
  g.N = xs[0];
  g.C = xs[1];
  g.M = ws[0];
  g.group = at.group;
  int64_t grouped = 0;
  if (g.group > std::max<int64_t>(g.C, 1) || g.C % g.group != 0 || g.M % g.group != 0 ||
      mul_overflows(ws[1], g.group, &grouped) || grouped != g.C)
    return invalid_argument(node.describe(), ": channels do not match: x ", shape_str(xs), ", w ", shape_str(ws),
                            ", group ", g.group);
  g.Cg = g.C / g.group;
  g.Mg = g.M / g.group;
  g.in_sp.assign(xs.begin() + 2, xs.end());
  g.k_sp.assign(ws.begin() + 2, ws.end());
  if (!at.window.kernel_shape.empty() && at.window.kernel_shape != g.k_sp)
    return invalid_argument(node.describe(), ": kernel_shape attribute does not match w ", shape_str(ws));
  HEARTH_ASSIGN_OR_RETURN(Window w, resolve_window(at.window, g.in_sp, g.k_sp, node));
  g.strides = w.strides;
  g.dilations = w.dilations;
  g.pad_begin = w.pad_begin;
  g.out_sp = w.out;
  for (size_t d = 0; d < g.in_sp.size(); ++d) {
    g.in_size *= g.in_sp[d];
    g.k_size *= g.k_sp[d];
    g.out_size *= g.out_sp[d];
  }
  return g;
}

// The im2row scratch ([out_size, Cg * k_size] int16) held to the tensor limit.
Status check_conv_scratch(const KernelContext& ctx, const ConvGeometry& g) {
  return ctx.check_output_shape(DataType::kInt16, {g.out_size, g.Cg, g.k_size})
      .with_context(ctx.node().describe() + ": im2row scratch");
}

// Fills rows[p * R + c * k_size + kk] = x[c, in(p, kk)] - zp (0 where padded), R = Cg * k_size.
template <typename T>
void im2row_nd(const T* x, int32_t zp, const ConvGeometry& g, int16_t* rows) {
  size_t nd = g.in_sp.size();
  int64_t R = g.Cg * g.k_size;
#pragma omp parallel for if (g.out_size * R > (1 << 16))
  for (int64_t p = 0; p < g.out_size; ++p) {
    int64_t base[8], rem = p;
    for (size_t d = nd; d-- > 0;) {
      base[d] = (rem % g.out_sp[d]) * g.strides[d] - g.pad_begin[d];
      rem /= g.out_sp[d];
    }
    int16_t* dst = rows + p * R;
    for (int64_t kk = 0; kk < g.k_size; ++kk) {
      int64_t krem = kk, off = 0, stride = 1;
      bool inside = true;
      for (size_t d = nd; d-- > 0;) {
        int64_t i = base[d] + (krem % g.k_sp[d]) * g.dilations[d];
        krem /= g.k_sp[d];
        if (i < 0 || i >= g.in_sp[d]) inside = false;
        off += i * stride;
        stride *= g.in_sp[d];
      }
      for (int64_t c = 0; c < g.Cg; ++c)
        dst[c * g.k_size + kk] = inside ? static_cast<int16_t>(static_cast<int32_t>(x[c * g.in_size + off]) - zp) : int16_t{0};
    }
  }
}

// Same layout as im2row_nd for the common 2-D case, with the bounds checks hoisted per kernel row.
template <typename T>
void im2row_2d(const T* x, int32_t zp, const ConvGeometry& g, int16_t* rows) {
  int64_t H = g.in_sp[0], W = g.in_sp[1], KH = g.k_sp[0], KW = g.k_sp[1], OW = g.out_sp[1];
  int64_t sh = g.strides[0], sw = g.strides[1], dh = g.dilations[0], dw = g.dilations[1];
  int64_t R = g.Cg * g.k_size;
#pragma omp parallel for if (g.out_size * R > (1 << 16))
  for (int64_t p = 0; p < g.out_size; ++p) {
    int64_t ih0 = (p / OW) * sh - g.pad_begin[0], iw0 = (p % OW) * sw - g.pad_begin[1];
    int16_t* dst = rows + p * R;
    for (int64_t c = 0; c < g.Cg; ++c) {
      const T* xc = x + c * g.in_size;
      for (int64_t kh = 0; kh < KH; ++kh) {
        int64_t ih = ih0 + kh * dh;
        int16_t* d = dst + (c * KH + kh) * KW;
        if (ih < 0 || ih >= H) {
          std::fill(d, d + KW, int16_t{0});
          continue;
        }
        const T* xr = xc + ih * W;
        if (iw0 >= 0 && iw0 + (KW - 1) * dw < W) {  // interior: no column checks
          for (int64_t kw = 0; kw < KW; ++kw) d[kw] = static_cast<int16_t>(static_cast<int32_t>(xr[iw0 + kw * dw]) - zp);
          continue;
        }
        for (int64_t kw = 0; kw < KW; ++kw) {
          int64_t iw = iw0 + kw * dw;
          d[kw] = (iw >= 0 && iw < W) ? static_cast<int16_t>(static_cast<int32_t>(xr[iw]) - zp) : int16_t{0};
        }
      }
    }
  }
}

template <typename T>
void im2row(const T* x, int32_t zp, const ConvGeometry& g, int16_t* rows) {
  if (g.in_sp.size() == 2) im2row_2d(x, zp, g, rows);
  else im2row_nd(x, zp, g, rows);
}

// Runs the integer convolution, calling emit(n, m_begin, acc) with acc laid out
// [Mg x out_size] for output channels m_begin .. m_begin + Mg of image n.
template <typename Emit>
Status integer_conv(const Tensor& x, const Tensor& w, int32_t xzp, const std::vector<int32_t>& wzp,
                    const ConvGeometry& g, const Node& node, Emit&& emit) {
  if (g.in_sp.size() > 8) return unimplemented(node.describe(), ": more than 8 spatial dims");
  bool x_u8 = x.dtype() == DataType::kUInt8, w_u8 = w.dtype() == DataType::kUInt8;
  if ((!x_u8 && x.dtype() != DataType::kInt8) || (!w_u8 && w.dtype() != DataType::kInt8))
    return unimplemented(node.describe(), ": integer conv of ", dtype_name(x.dtype()), " x ", dtype_name(w.dtype()),
                         " is not supported (uint8/int8 only)");
  int64_t R = g.Cg * g.k_size;
  std::vector<int16_t> ww(static_cast<size_t>(g.M * R));
  if (w_u8) widen_minus_zp(w.data<uint8_t>(), g.M, R, wzp, ww.data());
  else widen_minus_zp(w.data<int8_t>(), g.M, R, wzp, ww.data());
  auto rows = std::make_unique_for_overwrite<int16_t[]>(static_cast<size_t>(g.out_size * R));  // fully written by im2row
  std::vector<int32_t> acc(static_cast<size_t>(g.Mg * g.out_size));
  for (int64_t n = 0; n < g.N; ++n) {
    for (int64_t gi = 0; gi < g.group; ++gi) {
      int64_t xoff = (n * g.C + gi * g.Cg) * g.in_size;
      if (x_u8) im2row(x.data<uint8_t>() + xoff, xzp, g, rows.get());
      else im2row(x.data<int8_t>() + xoff, xzp, g, rows.get());
      qgemm_nt(g.Mg, g.out_size, R, ww.data() + gi * g.Mg * R, rows.get(), acc.data());
      emit(n, gi * g.Mg, acc.data());
    }
  }
  return ok_status();
}

Shape out_shape(const ConvGeometry& g) {
  Shape s{g.N, g.M};
  s.insert(s.end(), g.out_sp.begin(), g.out_sp.end());
  return s;
}

class ConvIntegerKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override { return attrs_.parse(info.node); }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    const Tensor* w = ctx.input(1);
    if (!x || !w) return invalid_argument(node.describe(), ": inputs x and w are required");
    HEARTH_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(attrs_, x->shape(), w->shape(), node));
    HEARTH_RETURN_IF_ERROR(check_8bit_zero_point(ctx.input(2), node, "x_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_8bit_zero_point(ctx.input(3), node, "w_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto xzp, read_zero_points(ctx.input(2), node, "x_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto wzp, read_zero_points(ctx.input(3), node, "w_zero_point"));
    if (xzp.size() != 1) return invalid_argument(node.describe(), ": x_zero_point must be a scalar");
    if (wzp.size() != 1 && static_cast<int64_t>(wzp.size()) != g.M)
      return invalid_argument(node.describe(), ": w_zero_point has ", wzp.size(), " values, expected 1 or ", g.M);
    Tensor& y = ctx.allocate_output(0, DataType::kInt32, out_shape(g));
    if (y.numel() == 0) return ok_status();
    HEARTH_RETURN_IF_ERROR(check_conv_scratch(ctx, g));
    int32_t* yp = y.data<int32_t>();
    return integer_conv(*x, *w, xzp[0], wzp, g, node, [&](int64_t n, int64_t m0, const int32_t* acc) {
      std::copy(acc, acc + g.Mg * g.out_size, yp + (n * g.M + m0) * g.out_size);
    });
  }

 private:
  ConvAttrs attrs_;
};

class QLinearConvKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override { return attrs_.parse(info.node); }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    for (size_t i : {0, 1, 3, 4, 6})
      if (!ctx.input(i)) return invalid_argument(node.describe(), ": input ", i, " is required");
    const Tensor& x = *ctx.input(0);
    const Tensor& w = *ctx.input(3);
    HEARTH_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(attrs_, x.shape(), w.shape(), node));
    HEARTH_RETURN_IF_ERROR(check_8bit_zero_point(ctx.input(2), node, "x_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_8bit_zero_point(ctx.input(5), node, "w_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto xs, read_scales(*ctx.input(1), node, "x_scale"));
    HEARTH_ASSIGN_OR_RETURN(auto xzp, read_zero_points(ctx.input(2), node, "x_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto ws, read_scales(*ctx.input(4), node, "w_scale"));
    HEARTH_ASSIGN_OR_RETURN(auto wzp, read_zero_points(ctx.input(5), node, "w_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto ys, read_scales(*ctx.input(6), node, "y_scale"));
    HEARTH_ASSIGN_OR_RETURN(auto yzp, read_zero_points(ctx.input(7), node, "y_zero_point"));
    if (xs.size() != 1 || xzp.size() != 1 || ys.size() != 1 || yzp.size() != 1)
      return invalid_argument(node.describe(), ": x and y scales / zero points must be scalars");
    if ((ws.size() != 1 && static_cast<int64_t>(ws.size()) != g.M) ||
        (wzp.size() != 1 && static_cast<int64_t>(wzp.size()) != g.M))
      return invalid_argument(node.describe(), ": w_scale / w_zero_point must have 1 or ", g.M, " values");
    std::vector<int32_t> bias(static_cast<size_t>(g.M), 0);
    if (const Tensor* b = ctx.input(8)) {
      if (b->dtype() != DataType::kInt32 || b->numel() != g.M)
        return invalid_argument(node.describe(), ": bias must be int32 with ", g.M, " values, got ", b->describe());
      std::copy(b->data<int32_t>(), b->data<int32_t>() + g.M, bias.begin());
    }
    DataType out_type = ctx.input(7) ? ctx.input(7)->dtype() : DataType::kUInt8;
    if (out_type != DataType::kUInt8 && out_type != DataType::kInt8)
      return unimplemented(node.describe(), ": QLinearConv output dtype ", dtype_name(out_type));
    Tensor& y = ctx.allocate_output(0, out_type, out_shape(g));
    if (y.numel() == 0) return ok_status();
    HEARTH_RETURN_IF_ERROR(check_conv_scratch(ctx, g));
    auto requant = [&](auto tag) {
      using Q = decltype(tag);
      Q* yp = y.data<Q>();
      return integer_conv(x, w, xzp[0], wzp, g, node, [&](int64_t n, int64_t m0, const int32_t* acc) {
        for (int64_t j = 0; j < g.Mg; ++j) {
          int64_t m = m0 + j;
          // Locals, not vector reads: Q* may alias anything, which would force reloads.
          const float mult = xs[0] * ws[ws.size() == 1 ? 0 : m] / ys[0];
          const int32_t bm = bias[m], zp = yzp[0];
          const int64_t count = g.out_size;
          Q* out = yp + (n * g.M + m) * count;
          const int32_t* a = acc + j * count;
#pragma omp simd
          for (int64_t p = 0; p < count; ++p) out[p] = quantize_value<Q>(static_cast<float>(a[p] + bm) * mult, zp);
        }
      });
    };
    return out_type == DataType::kUInt8 ? requant(uint8_t{}) : requant(int8_t{});
  }

 private:
  ConvAttrs attrs_;
};

}  // namespace

void register_quantized_conv_kernels(KernelRegistry& r) {
  r.add({"ConvInteger", "", 10, kMaxOpset, {DataType::kUInt8, DataType::kInt8}, kernel_factory<ConvIntegerKernel>()});
  r.add({"QLinearConv", "", 10, kMaxOpset, {DataType::kUInt8, DataType::kInt8}, kernel_factory<QLinearConvKernel>()});
}

}  // namespace hearth
