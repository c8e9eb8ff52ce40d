// ai.hearth QDQConv: the Conv of a QDQ model (graph/optimizer.h,
// fuse_qdq_convolutions) run as one oneDNN int8 convolution:
//   y = conv(DequantizeLinear(QuantizeLinear(x, sx, zx)), DequantizeLinear(wq, sw)) + B
// is computed as sx * sw[c] * conv_int32(q(x) - zx, wq) + B, which is the same
// value up to float rounding (the int32 accumulation is exact).
// Inputs: x (float, or uint8 already quantized with x_scale / x_zero_point),
// x_scale, x_zero_point (uint8), w (int8), w_scale ([C_out] or scalar),
// optional B (float [C_out]), optional y_scale, y_zero_point (uint8): then the
// output is written quantized (uint8), as the next QDQConv reads it.
// Attributes: Conv's, and activation "Clip" with activation_params [lo, hi]
// (a Relu is Clip [0, inf]) applied before the output's quantization.
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
#include <limits>
#include <string>
#include <unordered_map>

#include "core/machine.h"
#include "kernels/conv_dnnl.h"
#include "kernels/conv_fusion.h"
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
    const Tensor* sy = info.constant_input(6);
    const Tensor* zy = info.constant_input(7);
    if (sy || zy) {
      if (!sy || !zy || sy->numel() != 1 || zy->numel() != 1 || zy->dtype() != DataType::kUInt8)
        return invalid_argument(node.describe(), ": y_scale and y_zero_point must be constant scalars (uint8)");
      HEARTH_ASSIGN_OR_RETURN(auto syv, read_scales(*sy, node, "y_scale"));
      y_scale_ = syv[0];
      y_zero_ = zy->data<uint8_t>()[0];
      if (!(y_scale_ > 0) || !std::isfinite(y_scale_))
        return invalid_argument(node.describe(), ": y_scale must be positive and finite");
      quantized_out_ = true;
    }
    if (node.attr_string("activation", "") == "Clip") {
      const auto p = node.attr_floats("activation_params");
      if (p.size() != 2 || !(p[0] <= p[1])) return invalid_argument(node.describe(), ": bad activation_params");
      act_ = true, act_lo_ = p[0], act_hi_ = p[1];
    } else if (!node.attr_string("activation", "").empty()) {
      return invalid_argument(node.describe(), ": unknown activation '", node.attr_string("activation", ""), "'");
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
    if (!x || (x->dtype() != DataType::kFloat && x->dtype() != DataType::kUInt8) || x->rank() != 4)
      return invalid_argument(ctx.node().describe(), ": X must be float or uint8 [N, C, H, W], got ",
                              x ? x->describe() : std::string("nothing"));
    const int64_t n = x->dim(0), c_in = x->dim(1), c_out = w_.dim(0);
    if (group_ > std::max<int64_t>(c_in, 1) || c_in != w_.dim(1) * group_ || c_out % group_ != 0)
      return invalid_argument(ctx.node().describe(), ": W ", w_.describe(), " does not fit X ", x->describe(),
                              " with group ", group_);
    HEARTH_ASSIGN_OR_RETURN(Window win, resolve_window(attrs_, {x->dim(2), x->dim(3)}, {w_.dim(2), w_.dim(3)},
                                                       ctx.node()));
    Tensor& y = ctx.allocate_output(0, quantized_out_ ? DataType::kUInt8 : DataType::kFloat,
                                    {n, c_out, win.out[0], win.out[1]});
    if (y.numel() == 0) return ok_status();
    if (plan_n_ != n || plan_in_ != win.in) {
      plan_n_ = n, plan_in_ = win.in;
      prim_ok_ = int8_path_ && build_int8(n, c_in, c_out, win);
      float_plan_.reset();
    }
    // x through the QDQ pair (as QuantizeLinear computes it: x / scale, rounded
    // half to even): uint8 for the int8 path, back to float for the other. A
    // uint8 x comes quantized already, by the QDQConv before.
    const int64_t count = x->numel();
    const int threads = std::max(1, ctx.num_threads());
    std::shared_ptr<void> q_buf;
    const uint8_t* qd = x->dtype() == DataType::kUInt8 ? x->data<uint8_t>() : nullptr;
    if (!qd) {
      q_buf = ctx.allocator()->allocate(static_cast<size_t>(count));
      auto* out = static_cast<uint8_t*>(q_buf.get());
      quantize_floats_u8(x->data<float>(), out, count, x_scale_, x_zero_, threads);
      qd = out;
    }
    if (prim_ok_) return run_int8(qd, y.raw_data(), ctx.allocator());
    Tensor xq(DataType::kFloat, x->shape(), ctx.allocator());
    float* xqd = xq.data<float>();
#pragma omp parallel for num_threads(threads) if (count > (1 << 16)) schedule(static)
    for (int64_t i = 0; i < count; ++i) xqd[i] = (static_cast<float>(qd[i]) - x_zero_) * x_scale_;
    if (!float_plan_) {
      if (!w_float_.defined()) {
        w_float_ = Tensor(DataType::kFloat, w_.shape());
        const int64_t per = w_.numel() / c_out;
        for (int64_t c = 0; c < c_out; ++c)
          for (int64_t i = 0; i < per; ++i)
            w_float_.data<float>()[c * per + i] = w_.data<int8_t>()[c * per + i] * (out_scales_[c] / x_scale_);
      }
      ConvFusion fusion;
      if (act_) fusion.act = ConvActivation::kClip, fusion.alpha = act_lo_, fusion.beta = act_hi_;
      HEARTH_ASSIGN_OR_RETURN(float_plan_,
                              DnnlConvPlan::create(false, n, c_in, c_out, group_, win, bias_.defined(), fusion));
    }
    // The float path: oneDNN FP32 with the activation as a post-op, then the
    // output's quantization when it is carried as uint8.
    Tensor yf = quantized_out_ ? Tensor(DataType::kFloat, y.shape(), ctx.allocator()) : y;
    HEARTH_RETURN_IF_ERROR(float_plan_->run(xqd, w_float_.data<float>(),
                                            bias_.defined() ? bias_.data<float>() : nullptr, yf.data<float>(), true,
                                            nullptr, ctx.allocator()));
    if (quantized_out_) {
      const float* src = yf.data<float>();
      uint8_t* dst = y.data<uint8_t>();
      quantize_floats_u8(src, dst, y.numel(), y_scale_, y_zero_, threads);
    }
    return ok_status();
  }

 private:
  bool build_int8(int64_t n, int64_t c_in, int64_t c_out, const Window& win) {
    try {
      auto& eng = dnnl_cpu_engine();
      const memory::dims src = {n, c_in, win.in[0], win.in[1]}, dst = {n, c_out, win.out[0], win.out[1]};
      memory::dims wdims = {c_out, c_in / group_, w_.dim(2), w_.dim(3)};
      tag wtag = tag::oihw;
      if (group_ > 1) wdims = {group_, c_out / group_, c_in / group_, w_.dim(2), w_.dim(3)}, wtag = tag::goihw;
      const dt dst_type = quantized_out_ ? dt::u8 : dt::f32;
      src_user_ = memory::desc(src, dt::u8, tag::nchw);
      dst_user_ = memory::desc(dst, dst_type, tag::nchw);
      const memory::desc w_user(wdims, dt::s8, wtag);
      const memory::desc b_md({c_out}, dt::f32, tag::a);
      dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, memory::desc(src, dt::u8, tag::any),
          memory::desc(wdims, dt::s8, tag::any), bias_.defined() ? b_md : memory::desc(),
          memory::desc(dst, dst_type, tag::any), {win.strides[0], win.strides[1]},
          {win.dilations[0] - 1, win.dilations[1] - 1}, {win.pad_begin[0], win.pad_begin[1]},
          {win.pad_end[0], win.pad_end[1]});
      // dst = post_ops(scale * (acc + bias)) [+ dst zero point, saturated to uint8]:
      // with a quantized output the scales include 1 / y_scale, and the clip bounds
      // are in those units too.
      const float to_out = quantized_out_ ? 1.0f / y_scale_ : 1.0f;
      std::vector<float> scales(out_scales_);
      for (float& v : scales) v *= to_out;
      dnnl::primitive_attr attr;
      attr.set_output_scales(1 << 1, scales);
      attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
      if (quantized_out_) attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});
      if (act_) {
        dnnl::post_ops ops;
        if (act_lo_ == 0 && std::isinf(act_hi_))
          ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        else
          ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip_v2, act_lo_ * to_out,
                             std::isinf(act_hi_) ? std::numeric_limits<float>::max() : act_hi_ * to_out);
        attr.set_post_ops(ops);
      }
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
      dst_zp_mem_ = memory({{1}, dt::s32, tag::x}, eng);
      *static_cast<int32_t*>(dst_zp_mem_.get_data_handle()) = y_zero_;
      return true;
    } catch (const dnnl::error&) {
      return false;  // no int8 implementation for this configuration: the float path
    }
  }

  Status run_int8(const uint8_t* q, void* y, Allocator* scratch) {
    try {
      auto& eng = dnnl_cpu_engine();
      thread_local dnnl::stream s(eng);
      memory src_user(src_user_, eng, const_cast<uint8_t*>(q)), dst_user(dst_user_, eng, y);
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
      if (quantized_out_) args[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST] = dst_zp_mem_;
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
  float x_scale_ = 1, y_scale_ = 1;
  int32_t x_zero_ = 0, y_zero_ = 0;
  bool quantized_out_ = false;
  bool act_ = false;
  float act_lo_ = 0, act_hi_ = 0;
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
  memory w_mem_, zp_mem_, dst_zp_mem_;
  std::unique_ptr<DnnlConvPlan> float_plan_;
};

}  // namespace

void register_qdq_kernels(KernelRegistry& r) {
  r.add({"QDQConv", "ai.hearth", 1, kMaxOpset, {DataType::kFloat, DataType::kUInt8}, kernel_factory<QdqConvKernel>()});
}

}  // namespace hearth
