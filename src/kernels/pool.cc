// Kernel family: pooling. Windowed MaxPool / AveragePool / LpPool live here;
// global pools, MaxUnpool and MaxRoiPool in pool_global.cc. float32 MaxPool
// (without Indices) and AveragePool go through oneDNN when it can express the
// window exactly (pool_dnnl.h); everything else runs the reference loops
// (pool_ref.h). float16/bfloat16 are computed in float32. The blocked-layout
// MaxPool / AveragePool of graph/nchwc.h (domain ai.hearth.nchwc) are the same
// kernel on [N, C/8, S..., 8] tensors.
#include <algorithm>
#include <memory>

#include "kernels/conv_geometry.h"
#include "kernels/kernel.h"
#include "graph/nchwc.h"
#include "kernels/nchwc_layout.h"
#include "kernels/pool_nchwc.h"
#include "kernels/pool_dnnl.h"
#include "kernels/pool_kernels.h"
#include "kernels/pool_ref.h"
#include "kernels/register_all.h"

namespace hearth {
namespace {

enum class PoolOp { kMax, kAvg, kLp };

template <PoolOp kOp>
class WindowPoolKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Node& node = info.node;
    HEARTH_RETURN_IF_ERROR(parse_window_attrs(node, &attrs_));
    if (attrs_.kernel_shape.empty()) return invalid_argument("kernel_shape is required");
    col_major_ = node.attr_int("storage_order", 0) == 1;
    count_include_pad_ = node.attr_int("count_include_pad", 0) != 0;
    p_ = node.attr_float("p", 2.0f);
    if (kOp == PoolOp::kLp && p_ <= 0) return invalid_argument("p must be positive, got ", p_);
    want_indices_ = kOp == PoolOp::kMax && node.outputs.size() > 1 && !node.outputs[1].empty();
    blocked_ = node.domain == kNchwcDomain;
    if (blocked_ && (want_indices_ || kOp == PoolOp::kLp))
      return unimplemented("a blocked-layout pool has no Indices output and no LpPool");
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    if (!x) return invalid_argument(node.describe(), ": input X is required");
    if (blocked_) return compute_blocked(ctx, *x);
    if (x->rank() < 3) return invalid_argument(node.describe(), ": X must have rank >= 3, got ", x->describe());
    const std::vector<int64_t> in_sp(x->shape().begin() + 2, x->shape().end());
    HEARTH_ASSIGN_OR_RETURN(Window w, resolve_window(attrs_, in_sp, attrs_.kernel_shape, node));
    if (w.rank() > 3) return unimplemented(node.describe(), ": more than 3 spatial dims are not supported");
    PoolShape s{x->dim(0), x->dim(1), to_window3(w)};
    Shape out_shape = {s.n, s.c};
    out_shape.insert(out_shape.end(), w.out.begin(), w.out.end());
    Tensor& y = ctx.allocate_output(0, x->dtype(), out_shape);
    int64_t* indices = nullptr;
    if (want_indices_) indices = ctx.allocate_output(1, DataType::kInt64, out_shape).data<int64_t>();
    if (y.numel() == 0) return ok_status();
    if (x->numel() == 0) return invalid_argument(node.describe(), ": pooling over an empty input");
    const int threads = std::max(1, ctx.num_threads());
    switch (x->dtype()) {
      case DataType::kFloat:
        return run_float(s, w, x->data<float>(), y.data<float>(), indices, threads);
      case DataType::kDouble:
        run_ref<double>(s, x->data<double>(), y.data<double>(), indices, threads);
        return ok_status();
      case DataType::kInt8:
        if (kOp != PoolOp::kMax) break;
        run_ref<int8_t>(s, x->data<int8_t>(), y.data<int8_t>(), indices, threads);
        return ok_status();
      case DataType::kUInt8:
        if (kOp != PoolOp::kMax) break;
        run_ref<uint8_t>(s, x->data<uint8_t>(), y.data<uint8_t>(), indices, threads);
        return ok_status();
      case DataType::kFloat16:
      case DataType::kBFloat16: {
        HEARTH_ASSIGN_OR_RETURN(Tensor xf, cast_tensor(*x, DataType::kFloat));
        Tensor yf(DataType::kFloat, out_shape);
        run_ref<float>(s, xf.data<float>(), yf.data<float>(), indices, threads);
        HEARTH_ASSIGN_OR_RETURN(Tensor yc, cast_tensor(yf, x->dtype()));
        std::copy_n(static_cast<const char*>(yc.raw_data()), yc.nbytes(), static_cast<char*>(y.raw_data()));
        return ok_status();
      }
      default:
        break;
    }
    return unimplemented(node.describe(), ": dtype ", dtype_name(x->dtype()), " is not supported");
  }

 private:
  template <typename T>
  void run_ref(const PoolShape& s, const T* x, T* y, int64_t* indices, int threads) const {
    if constexpr (kOp == PoolOp::kMax) {
      max_pool_ref<T>(s, x, y, indices, col_major_, threads);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (kOp == PoolOp::kAvg) avg_pool_ref<T>(s, x, y, count_include_pad_, threads);
      else lp_pool_ref<T>(s, x, y, p_, threads);
    }
  }

  // X is [N, C/8, S..., 8] float32; Y likewise.
  Status compute_blocked(KernelContext& ctx, const Tensor& x) {
    const Node& node = ctx.node();
    if (x.dtype() != DataType::kFloat)
      return invalid_argument(node.describe(), ": the blocked layout is float32 only, got ", x.describe());
    auto logical = nchwc_logical_shape(x.shape());
    if (!logical.ok()) return with_node_context(logical.status(), node);
    const Shape xs = std::move(logical).value();
    const std::vector<int64_t> in_sp(xs.begin() + 2, xs.end());
    HEARTH_ASSIGN_OR_RETURN(Window w, resolve_window(attrs_, in_sp, attrs_.kernel_shape, node));
    if (w.rank() > 3) return unimplemented(node.describe(), ": more than 3 spatial dims are not supported");
    PoolShape s{xs[0], xs[1], to_window3(w)};
    Shape out_shape = {s.n, s.c};
    out_shape.insert(out_shape.end(), w.out.begin(), w.out.end());
    Tensor& y = ctx.allocate_output(0, DataType::kFloat, nchwc_blocked_shape(out_shape));
    if (y.numel() == 0) return ok_status();
    if (x.numel() == 0) return invalid_argument(node.describe(), ": pooling over an empty input");
    const int threads = std::max(1, ctx.num_threads());
    if (kOp != PoolOp::kLp && blocked_pool2d_supported(w)) {
      BlockedPool2d p;
      p.planes = s.n * s.c / kNchwcBlock;
      p.ih = w.in[0], p.iw = w.in[1], p.oh = w.out[0], p.ow = w.out[1];
      p.kh = w.kernel[0], p.kw = w.kernel[1], p.sh = w.strides[0], p.sw = w.strides[1];
      p.pt = w.pad_begin[0], p.pl = w.pad_begin[1], p.pb = w.pad_end[0], p.pr = w.pad_end[1];
      p.max = kOp == PoolOp::kMax;
      p.count_include_pad = count_include_pad_;
      blocked_pool2d(p, x.data<float>(), y.data<float>(), threads);
      return ok_status();
    }
    if (update_plan(s, w, true)) return plan_->run(x.data<float>(), y.data<float>());
    // oneDNN cannot express this window: the reference on plain copies.
    const int64_t in_plane = shape_numel(w.in), out_plane = shape_numel(w.out);
    Tensor xp(DataType::kFloat, xs), yp(DataType::kFloat, out_shape);
    nchwc_to_plain(x.data<float>(), xp.data<float>(), s.n, s.c, in_plane, threads);
    run_ref<float>(s, xp.data<float>(), yp.data<float>(), nullptr, threads);
    nchwc_from_plain(yp.data<float>(), y.data<float>(), s.n, s.c, out_plane, threads);
    return ok_status();
  }

  // Builds the oneDNN plan when the shape changed; true when there is one.
  bool update_plan(const PoolShape& s, const Window& w, bool blocked) {
    if (!plan_tried_ || plan_in_ != w.in || plan_n_ != s.n || plan_c_ != s.c) {
      plan_tried_ = true, plan_in_ = w.in, plan_n_ = s.n, plan_c_ = s.c;
      const DnnlPoolKind kind = kOp == PoolOp::kMax  ? DnnlPoolKind::kMax
                                : count_include_pad_ ? DnnlPoolKind::kAvgIncludePad
                                                     : DnnlPoolKind::kAvgExcludePad;
      auto plan = DnnlPoolPlan::create(kind, s.n, s.c, w, blocked);
      plan_ = plan.ok() ? std::move(plan).value() : nullptr;
    }
    return plan_ != nullptr;
  }

  Status run_float(const PoolShape& s, const Window& w, const float* x, float* y, int64_t* indices, int threads) {
    if (kOp == PoolOp::kLp || indices) {
      run_ref<float>(s, x, y, indices, threads);
      return ok_status();
    }
    if (update_plan(s, w, false)) return plan_->run(x, y);
    run_ref<float>(s, x, y, indices, threads);
    return ok_status();
  }

  WindowAttrs attrs_;
  bool col_major_ = false, count_include_pad_ = false, want_indices_ = false;
  bool blocked_ = false;  // blocked-layout variant (graph/nchwc.h)
  double p_ = 2.0;
  std::unique_ptr<DnnlPoolPlan> plan_;
  bool plan_tried_ = false;
  int64_t plan_n_ = -1, plan_c_ = -1;
  std::vector<int64_t> plan_in_;
};

std::vector<DataType> max_pool_types() {
  auto t = float_types();
  t.push_back(DataType::kInt8);
  t.push_back(DataType::kUInt8);
  return t;
}

}  // namespace

void register_pool_kernels(KernelRegistry& r) {
  r.add({"MaxPool", "", 1, kMaxOpset, max_pool_types(), kernel_factory<WindowPoolKernel<PoolOp::kMax>>()});
  r.add({"AveragePool", "", 1, kMaxOpset, float_types(), kernel_factory<WindowPoolKernel<PoolOp::kAvg>>()});
  r.add({"LpPool", "", 1, kMaxOpset, float_types(), kernel_factory<WindowPoolKernel<PoolOp::kLp>>()});
  r.add({"MaxPool", kNchwcDomain, 1, kMaxOpset, {DataType::kFloat}, kernel_factory<WindowPoolKernel<PoolOp::kMax>>()});
  r.add({"AveragePool", kNchwcDomain, 1, kMaxOpset, {DataType::kFloat},
         kernel_factory<WindowPoolKernel<PoolOp::kAvg>>()});
  register_pool_global_kernels(r);
}

}  // namespace hearth
