// oneDNN float32 pooling plan (see pool_dnnl.h).
#include "kernels/pool_dnnl.h"

#include <dnnl.hpp>

#include <algorithm>
#include <string>
#include <unordered_map>

#include "kernels/dnnl_common.h"

namespace hearth {

using dnnl::memory;

struct DnnlPoolImpl {
  dnnl::pooling_v2_forward prim;
  memory src, dst;              // wrap the caller's buffers
  memory src_blk, dst_blk;      // channel-blocked copies the jit kernels want (plain callers only)
  dnnl::reorder src_r, dst_r;
  bool caller_blocked = false;  // the caller's buffers are already blocked: no reorders
};

namespace {

memory::desc plain_md(int64_t n, int64_t c, const std::vector<int64_t>& sp) {
  memory::dims d = {n, c};
  d.insert(d.end(), sp.begin(), sp.end());
  memory::dims s(d.size(), 1);
  for (int i = static_cast<int>(d.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * d[i + 1];
  return memory::desc(d, memory::data_type::f32, s);
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream s(dnnl_cpu_engine());
  return s;
}

}  // namespace

DnnlPoolPlan::DnnlPoolPlan() : impl_(std::make_unique<DnnlPoolImpl>()) {}
DnnlPoolPlan::~DnnlPoolPlan() = default;

Result<std::unique_ptr<DnnlPoolPlan>> DnnlPoolPlan::create(DnnlPoolKind kind, int64_t n, int64_t c,
                                                           const Window& w, bool blocked) {
  if (blocked && c % 8 != 0) return invalid_argument("blocked pooling needs a multiple of 8 channels");
  if (w.rank() < 1 || w.rank() > 3) return unimplemented("oneDNN pooling supports 1 to 3 spatial dims");
  memory::dims strides, kernel, dil, pl, pr;
  for (size_t i = 0; i < w.rank(); ++i) {
    const int64_t dk = (w.kernel[i] - 1) * w.dilations[i] + 1;
    // ceil_mode may need more end padding than declared; that overhang never
    // counts toward an average's divisor in ONNX, which oneDNN cannot express
    // for count_include_pad.
    const int64_t needed = (w.out[i] - 1) * w.strides[i] + dk - w.in[i] - w.pad_begin[i];
    const int64_t right = std::max(w.pad_end[i], needed);
    if (right != w.pad_end[i] && kind == DnnlPoolKind::kAvgIncludePad)
      return unimplemented("count_include_pad with a ceil_mode overhang");
    strides.push_back(w.strides[i]);
    kernel.push_back(w.kernel[i]);
    dil.push_back(w.dilations[i] - 1);
    pl.push_back(w.pad_begin[i]);
    pr.push_back(right);
  }
  const dnnl::algorithm alg = kind == DnnlPoolKind::kMax             ? dnnl::algorithm::pooling_max
                              : kind == DnnlPoolKind::kAvgIncludePad ? dnnl::algorithm::pooling_avg_include_padding
                                                                     : dnnl::algorithm::pooling_avg_exclude_padding;
  std::unique_ptr<DnnlPoolPlan> plan(new DnnlPoolPlan());
  try {
    auto& eng = dnnl_cpu_engine();
    DnnlPoolImpl& p = *plan->impl_;
    const memory::desc src = plain_md(n, c, w.in), dst = plain_md(n, c, w.out);
    // oneDNN's plain-layout pooling is a slow generic loop; its jit kernels
    // want 8-channel blocks, and two reorders cost less than the difference.
    const memory::format_tag blk = w.rank() == 1   ? memory::format_tag::nCw8c
                                   : w.rank() == 2 ? memory::format_tag::nChw8c
                                                   : memory::format_tag::nCdhw8c;
    const memory::desc src_b(src.dims(), memory::data_type::f32, blk), dst_b(dst.dims(), memory::data_type::f32, blk);
    dnnl::pooling_v2_forward::desc d(dnnl::prop_kind::forward_inference, alg, src_b, dst_b, strides, kernel, dil,
                                     pl, pr);
    dnnl::pooling_v2_forward::primitive_desc pd(d, eng);
    // oneDNN's generic fallback (e.g. for dilated windows) is no faster than ours.
    if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) return unimplemented("oneDNN has only a reference pooling here");
    p.prim = dnnl::pooling_v2_forward(pd);
    p.caller_blocked = blocked;
    if (blocked) {
      p.src = memory(src_b, eng, nullptr);
      p.dst = memory(dst_b, eng, nullptr);
      return plan;
    }
    p.src = memory(src, eng, nullptr);
    p.dst = memory(dst, eng, nullptr);
    p.src_blk = memory(src_b, eng);
    p.dst_blk = memory(dst_b, eng);
    p.src_r = dnnl::reorder(p.src, p.src_blk);
    p.dst_r = dnnl::reorder(p.dst_blk, p.dst);
  } catch (const dnnl::error& e) {
    return dnnl_error_status(e, "pooling primitive");
  }
  return plan;
}

Status DnnlPoolPlan::run(const float* x, float* y) {
  DnnlPoolImpl& p = *impl_;
  try {
    auto& s = thread_stream();
    p.src.set_data_handle(const_cast<float*>(x));
    p.dst.set_data_handle(y);
    if (p.caller_blocked) {
      p.prim.execute(s, {{DNNL_ARG_SRC, p.src}, {DNNL_ARG_DST, p.dst}});
      s.wait();
      return ok_status();
    }
    p.src_r.execute(s, p.src, p.src_blk);
    p.prim.execute(s, {{DNNL_ARG_SRC, p.src_blk}, {DNNL_ARG_DST, p.dst_blk}});
    p.dst_r.execute(s, p.dst_blk, p.dst);
    s.wait();
  } catch (const dnnl::error& e) {
    return dnnl_error_status(e, "pooling execution");
  }
  return ok_status();
}

}  // namespace hearth
