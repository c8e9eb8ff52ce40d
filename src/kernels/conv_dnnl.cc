// oneDNN float32 Conv / ConvTranspose plan (see conv_dnnl.h).
#include "kernels/conv_dnnl.h"

#include <dnnl.hpp>

#include <algorithm>
#include <unordered_map>

#include "kernels/dnnl_common.h"

namespace hearth {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct DnnlConvImpl {
  dnnl::primitive prim;
  memory::desc src_caller, w_plain, dst_caller, bias_md;
  memory src_user, w_user, dst_user, bias_user;  // wrap the caller's buffers
  memory src_mem, w_mem, dst_mem;                // what the primitive reads/writes
  bool src_reorder = false, w_reorder = false, dst_reorder = false, has_bias = false;
  bool w_ready = false;  // constant weights already in w_mem
  bool sum = false;      // dst must hold Z before the primitive runs
  std::string impl;      // oneDNN's implementation name
  dnnl::reorder src_r, w_r, dst_r, z_r;
};

namespace {

dnnl::stream& thread_stream() {
  thread_local dnnl::stream s(dnnl_cpu_engine());
  return s;
}

memory::dims row_major_strides(const memory::dims& d) {
  memory::dims s(d.size(), 1);
  for (int i = static_cast<int>(d.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * d[i + 1];
  return s;
}

// Logical oneDNN weights dims ([G,] OC/G, IC/G, k...) and the strides of the ONNX
// layout: Conv [OC][IC/G][k], ConvTranspose [IC][OC/G][k] (grouped as [G][IC/G][OC/G][k]).
memory::desc plain_weights(bool transpose, int64_t c_in, int64_t c_out, int64_t group, const Window& w) {
  const int64_t icg = c_in / group, ocg = c_out / group;
  int64_t k_sp = 1;
  for (int64_t k : w.kernel) k_sp *= k;
  memory::dims dims, strides;
  if (group > 1) dims = {group, ocg, icg};
  else dims = {ocg, icg};
  const memory::dims kdims(w.kernel.begin(), w.kernel.end());
  dims.insert(dims.end(), kdims.begin(), kdims.end());
  strides = row_major_strides(dims);
  if (transpose) {
    const size_t o = group > 1 ? 1 : 0;  // index of the OC/G dim; IC/G follows
    strides[o] = k_sp;
    strides[o + 1] = ocg * k_sp;
  }
  return memory::desc(dims, dt::f32, strides);
}

memory::desc plain_act(int64_t n, int64_t c, const std::vector<int64_t>& sp) {
  memory::dims d = {n, c};
  d.insert(d.end(), sp.begin(), sp.end());
  return memory::desc(d, dt::f32, row_major_strides(d));
}

// The 8-channel blocked layout of graph/nchwc.h: nCw8c, nChw8c or nCdhw8c.
memory::desc blocked_act(int64_t n, int64_t c, const std::vector<int64_t>& sp) {
  memory::dims d = {n, c};
  d.insert(d.end(), sp.begin(), sp.end());
  const tag t = sp.size() == 1 ? tag::nCw8c : sp.size() == 2 ? tag::nChw8c : tag::nCdhw8c;
  return memory::desc(d, dt::f32, t);
}

memory::desc any_like(const memory::desc& md) { return memory::desc(md.dims(), dt::f32, tag::any); }

// Chooses between wrapping the caller's buffer and a reorder through a blocked buffer.
// Persistent buffers are owned by the plan (packed weights); activation buffers get
// their memory per run from the session's pool (see run()), so a model's convolutions
// share them instead of each holding its own.
void bind(const memory::desc& plain, const memory::desc& chosen, bool to_prim, memory* user, memory* mem,
          bool* needs_reorder, dnnl::reorder* r, bool persistent) {
  auto& eng = dnnl_cpu_engine();
  *user = memory(plain, eng, nullptr);
  *needs_reorder = !(plain == chosen);
  if (*needs_reorder) {
    *mem = persistent ? memory(chosen, eng) : memory(chosen, eng, nullptr);
    *r = to_prim ? dnnl::reorder(*user, *mem) : dnnl::reorder(*mem, *user);
  } else {
    *mem = *user;
  }
}

dnnl::primitive_attr fusion_attr(const ConvFusion& f) {
  dnnl::post_ops ops;
  if (f.sum) ops.append_sum(1.0f);
  using alg = dnnl::algorithm;
  switch (f.act) {
    case ConvActivation::kNone: break;
    case ConvActivation::kRelu: ops.append_eltwise(1.0f, alg::eltwise_relu, 0.0f, 0.0f); break;
    case ConvActivation::kLeakyRelu: ops.append_eltwise(1.0f, alg::eltwise_relu, f.alpha, 0.0f); break;
    case ConvActivation::kSigmoid: ops.append_eltwise(1.0f, alg::eltwise_logistic, 0.0f, 0.0f); break;
    case ConvActivation::kTanh: ops.append_eltwise(1.0f, alg::eltwise_tanh, 0.0f, 0.0f); break;
    case ConvActivation::kClip: ops.append_eltwise(1.0f, alg::eltwise_clip_v2, f.alpha, f.beta); break;
    case ConvActivation::kHardSigmoid:
      ops.append_eltwise(1.0f, alg::eltwise_linear, f.alpha, f.beta);
      ops.append_eltwise(1.0f, alg::eltwise_clip_v2, 0.0f, 1.0f);
      break;
    case ConvActivation::kHardSwish: ops.append_eltwise(1.0f, alg::eltwise_hardswish, 0.0f, 0.0f); break;
    case ConvActivation::kSwish: ops.append_eltwise(1.0f, alg::eltwise_swish, 1.0f, 0.0f); break;
  }
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  return attr;
}

}  // namespace

DnnlConvPlan::DnnlConvPlan() : impl_(std::make_unique<DnnlConvImpl>()) {}
DnnlConvPlan::~DnnlConvPlan() = default;

Result<std::unique_ptr<DnnlConvPlan>> DnnlConvPlan::create(bool transpose, int64_t n, int64_t c_in, int64_t c_out,
                                                           int64_t group, const Window& window, bool has_bias,
                                                           const ConvFusion& fusion, bool src_blocked,
                                                           bool dst_blocked, bool hold_layout) {
  if (window.rank() < 1 || window.rank() > 3) return unimplemented("oneDNN conv supports 1 to 3 spatial dims");
  if ((src_blocked && c_in % 8 != 0) || (dst_blocked && c_out % 8 != 0))
    return invalid_argument("a blocked convolution needs channel counts that are multiples of 8");
  std::unique_ptr<DnnlConvPlan> plan(new DnnlConvPlan());
  DnnlConvImpl& p = *plan->impl_;
  try {
    auto& eng = dnnl_cpu_engine();
    p.src_caller = src_blocked ? blocked_act(n, c_in, window.in) : plain_act(n, c_in, window.in);
    p.dst_caller = dst_blocked ? blocked_act(n, c_out, window.out) : plain_act(n, c_out, window.out);
    p.w_plain = plain_weights(transpose, c_in, c_out, group, window);
    p.has_bias = has_bias;
    if (has_bias) p.bias_md = memory::desc({c_out}, dt::f32, tag::a);
    memory::dims strides(window.strides.begin(), window.strides.end());
    memory::dims dil, pl(window.pad_begin.begin(), window.pad_begin.end()),
        pr(window.pad_end.begin(), window.pad_end.end());
    for (int64_t d : window.dilations) dil.push_back(d - 1);
    const auto prop = dnnl::prop_kind::forward_inference;
    const dnnl::primitive_attr attr = fusion_attr(fusion);
    p.sum = fusion.sum;
    // A held blocked side keeps its 8-channel layout: on AVX-512 oneDNN would pick
    // 16-channel blocks for `any` and reorder in and out of the convolution;
    // held to 8 channels it runs its AVX2 kernel (graph/nchwc.h).
    // A plain x feeding a held blocked y is asked for in blocks too (reordered
    // in per call): left to `any`, oneDNN picked a channels-last x beside the
    // 8-channel y, a mix only its reference implementation takes (a depthwise
    // 112x112 layer ran 65 ms instead of 0.3). Channel counts that are not a
    // multiple of 8 (a network's RGB input) stay `any`.
    memory::desc src_req = any_like(p.src_caller);
    if (hold_layout && src_blocked) src_req = p.src_caller;
    else if (hold_layout && dst_blocked && c_in % 8 == 0) src_req = blocked_act(n, c_in, window.in);
    const memory::desc dst_req = dst_blocked && hold_layout ? p.dst_caller : any_like(p.dst_caller);
    memory::desc src_pd, w_pd, dst_pd;
    if (!transpose) {
      dnnl::convolution_forward::desc d(prop, dnnl::algorithm::convolution_direct, src_req, any_like(p.w_plain),
                                        p.bias_md, dst_req, strides, dil, pl, pr);
      dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
      p.prim = dnnl::convolution_forward(pd);
      p.impl = pd.impl_info_str();
      src_pd = pd.src_desc(), w_pd = pd.weights_desc(), dst_pd = pd.dst_desc();
    } else {
      dnnl::deconvolution_forward::desc d(prop, dnnl::algorithm::deconvolution_direct, src_req, any_like(p.w_plain),
                                          p.bias_md, dst_req, strides, dil, pl, pr);
      dnnl::deconvolution_forward::primitive_desc pd(d, attr, eng);
      p.prim = dnnl::deconvolution_forward(pd);
      p.impl = pd.impl_info_str();
      src_pd = pd.src_desc(), w_pd = pd.weights_desc(), dst_pd = pd.dst_desc();
    }
    bind(p.src_caller, src_pd, true, &p.src_user, &p.src_mem, &p.src_reorder, &p.src_r, false);
    bind(p.w_plain, w_pd, true, &p.w_user, &p.w_mem, &p.w_reorder, &p.w_r, true);
    bind(p.dst_caller, dst_pd, false, &p.dst_user, &p.dst_mem, &p.dst_reorder, &p.dst_r, false);
    if (has_bias) p.bias_user = memory(p.bias_md, eng, nullptr);
    if (p.sum && p.dst_reorder) p.z_r = dnnl::reorder(p.dst_user, p.dst_mem);
  } catch (const dnnl::error& e) {
    return dnnl_error_status(e, transpose ? "ConvTranspose primitive" : "Conv primitive");
  }
  return plan;
}

Status DnnlConvPlan::run(const float* x, const float* w, const float* b, float* y, bool weights_constant,
                         const float* z, Allocator* scratch) {
  DnnlConvImpl& p = *impl_;
  if (p.sum && !z) return internal_error("fused convolution run without its Z input");
  if (!scratch) scratch = default_allocator();
  try {
    auto& s = thread_stream();
    std::shared_ptr<void> src_buf, dst_buf;  // blocked-layout activations, back to the pool after the run
    if (p.src_reorder) {
      src_buf = scratch->allocate(p.src_mem.get_desc().get_size());
      p.src_mem.set_data_handle(src_buf.get());
    }
    if (p.dst_reorder) {
      dst_buf = scratch->allocate(p.dst_mem.get_desc().get_size());
      p.dst_mem.set_data_handle(dst_buf.get());
    }
    p.src_user.set_data_handle(const_cast<float*>(x));
    p.dst_user.set_data_handle(y);
    if (p.src_reorder) p.src_r.execute(s, p.src_user, p.src_mem);
    if (p.sum) {
      // The sum post-op accumulates onto dst: seed it with Z.
      if (p.dst_reorder) {
        p.dst_user.set_data_handle(const_cast<float*>(z));
        p.z_r.execute(s, p.dst_user, p.dst_mem);
        p.dst_user.set_data_handle(y);
      } else if (z != y) {
        std::copy_n(z, p.dst_caller.get_size() / sizeof(float), y);
      }
    }
    if (!(weights_constant && p.w_ready)) {
      p.w_user.set_data_handle(const_cast<float*>(w));
      if (p.w_reorder) p.w_r.execute(s, p.w_user, p.w_mem);
      // Without a reorder w_mem wraps the caller's buffer, which must stay alive (constants do).
      p.w_ready = weights_constant;
    }
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, p.src_mem}, {DNNL_ARG_WEIGHTS, p.w_mem}, {DNNL_ARG_DST, p.dst_mem}};
    if (p.has_bias) {
      p.bias_user.set_data_handle(const_cast<float*>(b));
      args[DNNL_ARG_BIAS] = p.bias_user;
    }
    p.prim.execute(s, args);
    if (p.dst_reorder) p.dst_r.execute(s, p.dst_mem, p.dst_user);
    s.wait();
  } catch (const dnnl::error& e) {
    return dnnl_error_status(e, "convolution execution");
  }
  return ok_status();
}

std::string DnnlConvPlan::implementation() const { return impl_->impl; }

}  // namespace hearth
