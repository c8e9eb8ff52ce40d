// ai.hearth QDQConv: the Conv of a QDQ model (graph/optimizer.h,
// fuse_qdq_convolutions) run as one oneDNN int8 convolution:
//   y = conv(DequantizeLinear(QuantizeLinear(x, sx, zx)), DequantizeLinear(wq, sw)) + B
// is computed as sx * sw[c] * conv_int32(q(x) - zx, wq) + B, which is the same
// value up to float rounding (the int32 accumulation is exact).
// Inputs: x (float), x_scale, x_zero_point (uint8), w (int8), w_scale ([C_out]
// or scalar), optional B (float [C_out]); Conv's attributes.
//
// The int8 path needs exact products: with VNNI (vpdpbusd) any int8 weights;
// without it oneDNN's AVX2 kernels add pairs of u8 x s8 products in 16 bits
// (vpmaddubsw), exact only while |w| <= 64, so larger weights (and depthwise
// layers, where AVX2's int8 kernel was 3.5x slower than FP32 on Zen 4) take
// the float path on such CPUs: x quantized and dequantized exactly as the QDQ
// pair does, weights dequantized once, an FP32 oneDNN convolution.
#include <dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>

#include "core/machine.h"
#include "kernels/conv_dnnl.h"
#include "kernels/conv_geometry.h"
#include "kernels/dnnl_common.h"
#include "kernels/kernel.h"
#include "kernels/quantized_common.h"
#include "kernels/register_all.h"

namespace hearth {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

bool cpu_has_vnni() {
  const CpuInfo& c = cpu_info();
  return isa_at_least(IsaLevel::kAvx512) ? c.avx512_vnni : c.avx_vnni && isa_at_least(IsaLevel::kAvx2);
}

class QdqConvKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Node& node = info.node;
    HEARTH_RETURN_IF_ERROR(parse_window_attrs(node, &attrs_));
    attrs_.ceil_mode = false;
    group_ = node.attr_int("group", 1);
    if (group_ <= 0) return invalid_argument(node.describe(), ": group must be positive, got ", group_);
    const Tensor* sx = info.constant_input(1);
    const Tensor* zx = info.constant_input(2);
    const Tensor* w = info.constant_input(3);
    const Tensor* sw = info.constant_input(4);
    const Tensor* b = info.constant_input(5);
    if (!sx || !zx || !w || !sw)
      return invalid_argument(node.describe(), ": scales, zero point and weights must be constants");
    if (w->dtype() != DataType::kInt8 || w->rank() != 4)
      return invalid_argument(node.describe(), ": W must be int8 [C_out, C_in/group, kH, kW], got ", w->describe());
    if (zx->dtype() != DataType::kUInt8 || zx->numel() != 1 || sx->numel() != 1)
      return invalid_argument(node.describe(), ": x_scale and x_zero_point must be scalars (uint8 zero point)");
    HEARTH_ASSIGN_OR_RETURN(auto sxv, read_scales(*sx, node, "x_scale"));
    HEARTH_ASSIGN_OR_RETURN(auto swv, read_scales(*sw, node, "w_scale"));
    x_scale_ = sxv[0];
    x_zero_ = zx->data<uint8_t>()[0];
    if (!(x_scale_ > 0) || !std::isfinite(x_scale_))
      return invalid_argument(node.describe(), ": x_scale must be positive and finite");
    w_ = *w;
    const int64_t c_out = w->dim(0);
    if (swv.size() != 1 && static_cast<int64_t>(swv.size()) != c_out)
      return invalid_argument(node.describe(), ": w_scale must have 1 or ", c_out, " values, got ", swv.size());
    out_scales_.resize(static_cast<size_t>(c_out));
    for (int64_t c = 0; c < c_out; ++c) out_scales_[c] = x_scale_ * swv[swv.size() == 1 ? 0 : c];
    if (b) {
      if (b->dtype() != DataType::kFloat || b->numel() != c_out)
        return invalid_argument(node.describe(), ": B must be float [", c_out, "], got ", b->describe());
      bias_ = *b;
    }
    int peak = 0;
    for (int64_t i = 0; i < w->numel(); ++i) peak = std::max(peak, std::abs(static_cast<int>(w->data<int8_t>()[i])));
    const bool depthwise = group_ > 1 && w->dim(1) == 1;
    bool finite = true;  // the bias is divided by the output scales (build_int8)
    for (float v : out_scales_) finite &= v > 0 && std::isfinite(v);
    int8_path_ = finite && (cpu_has_vnni() || (isa_at_least(IsaLevel::kAvx2) && peak <= 64 && !depthwise));
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* x = ctx.input(0);
    if (!x || x->dtype() != DataType::kFloat || x->rank() != 4)
      return invalid_argument(ctx.node().describe(), ": X must be float [N, C, H, W], got ",
                              x ? x->describe() : std::string("nothing"));
    const int64_t n = x->dim(0), c_in = x->dim(1), c_out = w_.dim(0);
    if (c_in != w_.dim(1) * group_ || c_out % group_ != 0)
      return invalid_argument(ctx.node().describe(), ": W ", w_.describe(), " does not fit X ", x->describe(),
                              " with group ", group_);
    HEARTH_ASSIGN_OR_RETURN(Window win, resolve_window(attrs_, {x->dim(2), x->dim(3)}, {w_.dim(2), w_.dim(3)},
                                                       ctx.node()));
    Tensor& y = ctx.allocate_output(0, DataType::kFloat, {n, c_out, win.out[0], win.out[1]});
    if (y.numel() == 0) return ok_status();
    if (plan_n_ != n || plan_in_ != win.in) {
      plan_n_ = n, plan_in_ = win.in;
      prim_ok_ = int8_path_ && build_int8(n, c_in, c_out, win);
      float_plan_.reset();
    }
    // x through the QDQ pair: uint8 for the int8 path, back to float for the other.
    const int64_t count = x->numel();
    const float inv = 1.0f / x_scale_;
    const float* xd = x->data<float>();
    const int threads = std::max(1, ctx.num_threads());
    if (prim_ok_) {
      auto q = ctx.allocator()->allocate(static_cast<size_t>(count));
      auto* qd = static_cast<uint8_t*>(q.get());
#pragma omp parallel for num_threads(threads) if (count > (1 << 16)) schedule(static)
      for (int64_t i = 0; i < count; ++i) qd[i] = quantize_value<uint8_t>(xd[i] * inv, x_zero_);
      return run_int8(qd, y.data<float>(), ctx.allocator());
    }
    Tensor xq(DataType::kFloat, x->shape(), ctx.allocator());
    float* xqd = xq.data<float>();
#pragma omp parallel for num_threads(threads) if (count > (1 << 16)) schedule(static)
    for (int64_t i = 0; i < count; ++i)
      xqd[i] = (static_cast<float>(quantize_value<uint8_t>(xd[i] * inv, x_zero_)) - x_zero_) * x_scale_;
    if (!float_plan_) {
      if (!w_float_.defined()) {
        w_float_ = Tensor(DataType::kFloat, w_.shape());
        const int64_t per = w_.numel() / c_out;
        for (int64_t c = 0; c < c_out; ++c)
          for (int64_t i = 0; i < per; ++i)
            w_float_.data<float>()[c * per + i] = w_.data<int8_t>()[c * per + i] * (out_scales_[c] / x_scale_);
      }
      HEARTH_ASSIGN_OR_RETURN(float_plan_, DnnlConvPlan::create(false, n, c_in, c_out, group_, win, bias_.defined()));
    }
    return float_plan_->run(xqd, w_float_.data<float>(), bias_.defined() ? bias_.data<float>() : nullptr,
                            y.data<float>(), true, nullptr, ctx.allocator());
  }

 private:
  bool build_int8(int64_t n, int64_t c_in, int64_t c_out, const Window& win) {
    try {
      auto& eng = dnnl_cpu_engine();
      const memory::dims src = {n, c_in, win.in[0], win.in[1]}, dst = {n, c_out, win.out[0], win.out[1]};
      memory::dims wdims = {c_out, c_in / group_, w_.dim(2), w_.dim(3)};
      tag wtag = tag::oihw;
      if (group_ > 1) wdims = {group_, c_out / group_, c_in / group_, w_.dim(2), w_.dim(3)}, wtag = tag::goihw;
      src_user_ = memory::desc(src, dt::u8, tag::nchw);
      dst_user_ = memory::desc(dst, dt::f32, tag::nchw);
      const memory::desc w_user(wdims, dt::s8, wtag);
      const memory::desc b_md({c_out}, dt::f32, tag::a);
      dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, memory::desc(src, dt::u8, tag::any),
          memory::desc(wdims, dt::s8, tag::any), bias_.defined() ? b_md : memory::desc(),
          memory::desc(dst, dt::f32, tag::any), {win.strides[0], win.strides[1]},
          {win.dilations[0] - 1, win.dilations[1] - 1}, {win.pad_begin[0], win.pad_begin[1]},
          {win.pad_end[0], win.pad_end[1]});
      dnnl::primitive_attr attr;
      attr.set_output_scales(1 << 1, out_scales_);
      attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
      dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
      prim_ = dnnl::convolution_forward(pd);
      src_prim_ = pd.src_desc(), dst_prim_ = pd.dst_desc();
      // Reorder primitives are made once: making one per call cost milliseconds.
      src_reorder_ = src_prim_ == src_user_ ? dnnl::reorder() : dnnl::reorder(memory(src_user_, eng, nullptr),
                                                                              memory(src_prim_, eng, nullptr));
      dst_reorder_ = dst_prim_ == dst_user_ ? dnnl::reorder() : dnnl::reorder(memory(dst_prim_, eng, nullptr),
                                                                              memory(dst_user_, eng, nullptr));
      w_mem_ = memory(pd.weights_desc(), eng);
      memory w_src(w_user, eng, const_cast<int8_t*>(w_.data<int8_t>()));
      dnnl::stream s(eng);
      dnnl::reorder(w_src, w_mem_).execute(s, w_src, w_mem_);
      s.wait();
      // oneDNN 2.x adds an int8 convolution's bias before the output scales
      // (dst = scale * (acc + bias)): the bias goes in the accumulator's units.
      int8_bias_.assign(out_scales_.size(), 0.0f);
      for (size_t c = 0; bias_.defined() && c < out_scales_.size(); ++c)
        int8_bias_[c] = bias_.data<float>()[c] / out_scales_[c];
      zp_mem_ = memory({{1}, dt::s32, tag::x}, eng);
      *static_cast<int32_t*>(zp_mem_.get_data_handle()) = x_zero_;
      return true;
    } catch (const dnnl::error&) {
      return false;  // no int8 implementation for this configuration: the float path
    }
  }

  Status run_int8(uint8_t* q, float* y, Allocator* scratch) {
    try {
      auto& eng = dnnl_cpu_engine();
      thread_local dnnl::stream s(eng);
      memory src_user(src_user_, eng, q), dst_user(dst_user_, eng, y);
      memory src = src_user, dst = dst_user;
      std::shared_ptr<void> src_buf, dst_buf;
      if (!(src_prim_ == src_user_)) {
        src_buf = scratch->allocate(src_prim_.get_size());
        src = memory(src_prim_, eng, src_buf.get());
        src_reorder_.execute(s, src_user, src);
      }
      if (!(dst_prim_ == dst_user_)) {
        dst_buf = scratch->allocate(dst_prim_.get_size());
        dst = memory(dst_prim_, eng, dst_buf.get());
      }
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                           {DNNL_ARG_WEIGHTS, w_mem_},
                                           {DNNL_ARG_DST, dst},
                                           {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, zp_mem_}};
      if (bias_.defined())
        args[DNNL_ARG_BIAS] = memory(memory::desc({bias_.dim(0)}, dt::f32, tag::a), eng, int8_bias_.data());
      prim_.execute(s, args);
      if (dst.get_data_handle() != dst_user.get_data_handle()) dst_reorder_.execute(s, dst, dst_user);
      s.wait();
    } catch (const dnnl::error& e) {
      return dnnl_error_status(e, "int8 convolution");
    }
    return ok_status();
  }

  WindowAttrs attrs_;
  int64_t group_ = 1;
  float x_scale_ = 1;
  int32_t x_zero_ = 0;
  Tensor w_, bias_, w_float_;
  std::vector<float> out_scales_, int8_bias_;
  bool int8_path_ = false;
  // Per input shape.
  int64_t plan_n_ = -1;
  std::vector<int64_t> plan_in_;
  bool prim_ok_ = false;
  dnnl::primitive prim_;
  dnnl::reorder src_reorder_, dst_reorder_;
  memory::desc src_user_, dst_user_, src_prim_, dst_prim_;
  memory w_mem_, zp_mem_;
  std::unique_ptr<DnnlConvPlan> float_plan_;
};

}  // namespace

void register_qdq_kernels(KernelRegistry& r) {
  r.add({"QDQConv", "ai.hearth", 1, kMaxOpset, {DataType::kFloat}, kernel_factory<QdqConvKernel>()});
}

}  // namespace hearth
