// Kernel family: Conv and ConvTranspose. float32 runs through oneDNN
// (conv_dnnl.h: primitive cached per input shape, constant weights reordered
// once); double, and anything oneDNN rejects, runs the reference loops
// (conv_ref.h); float16/bfloat16 are computed in float32. com.microsoft
// FusedConv (Conv + optional residual Z + activation, conv_fusion.h) shares the
// Conv kernel and maps onto oneDNN post-ops. The blocked-layout Conv of
// graph/nchwc.h (domain ai.hearth.nchwc) is the same kernel with its output,
// and optionally its input, in 8-channel blocks.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "kernels/conv_dnnl.h"
#include "kernels/conv_fusion.h"
#include "kernels/conv_geometry.h"
#include "kernels/conv_ref.h"
#include "kernels/conv_winograd.h"
#include "graph/nchwc.h"
#include "kernels/kernel.h"
#include "kernels/nchwc_layout.h"
#include "kernels/register_all.h"

namespace hearth {
namespace {

// Validated shapes of one call.
struct ConvCall {
  ConvShape shape;
  Window window;
  Shape out_shape;
};

class ConvKernelBase : public Kernel {
 public:
  explicit ConvKernelBase(bool transpose) : transpose_(transpose) {}

  Status init(const KernelInfo& info) override {
    HEARTH_RETURN_IF_ERROR(parse_window_attrs(info.node, &attrs_));
    attrs_.ceil_mode = false;
    group_ = info.node.attr_int("group", 1);
    if (group_ <= 0) return invalid_argument("group must be positive, got ", group_);
    output_padding_ = info.node.attr_ints("output_padding");
    output_shape_ = info.node.attr_ints("output_shape");
    if (const Tensor* w = info.constant_input(1)) const_w_ = *w;
    nchwc_ = info.node.domain == kNchwcDomain;
    x_blocked_ = nchwc_ && info.node.attr_int("x_blocked", 0) != 0;
    fused_ = info.node.op_type == "FusedConv" || nchwc_;
    if (nchwc_ && transpose_) return unimplemented("a blocked-layout ConvTranspose is not supported");
    if (fused_) {
      HEARTH_RETURN_IF_ERROR(parse_conv_activation(info.node.attr_string("activation", ""),
                                                   info.node.attr_floats("activation_params"), &fusion_));
    }
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* x = ctx.input(0);
    const Tensor* w = ctx.input(1);
    const Tensor* b = ctx.input(2);
    const Tensor* z = fused_ ? ctx.input(3) : nullptr;
    if (!x) return invalid_argument(ctx.node().describe(), ": inputs X and W are required");
    Shape x_shape = x->shape();
    if (nchwc_) {
      if (x->dtype() != DataType::kFloat)
        return invalid_argument(ctx.node().describe(), ": the blocked layout is float32 only, got ", x->describe());
      if (x_blocked_) {
        auto logical = nchwc_logical_shape(x->shape());
        if (!logical.ok()) return with_node_context(logical.status(), ctx.node());
        x_shape = std::move(logical).value();
      }
    }
    HEARTH_ASSIGN_OR_RETURN(ConvCall call, validate(ctx.node(), x_shape, x, w, b));
    Shape y_shape = call.out_shape;
    if (nchwc_) {
      if (call.shape.c_out % kNchwcBlock != 0)
        return invalid_argument(ctx.node().describe(), ": a blocked output needs a multiple of 8 channels, got ",
                                call.shape.c_out);
      y_shape = nchwc_blocked_shape(call.out_shape);
    }
    if (z && (z->shape() != y_shape || z->dtype() != x->dtype()))
      return invalid_argument(ctx.node().describe(), ": Z ", z->describe(), " must match the output ",
                              dtype_name(x->dtype()), shape_str(y_shape));
    // A residual Z that nothing reads later becomes Y's memory: the fused sum then
    // accumulates onto it in place instead of copying it first.
    Tensor& y = z ? ctx.allocate_output_over_input(0, 3, x->dtype(), y_shape)
                  : ctx.allocate_output(0, x->dtype(), y_shape);
    if (y.numel() == 0) return ok_status();
    const int threads = std::max(1, ctx.num_threads());
    scratch_ = ctx.allocator();
    switch (x->dtype()) {
      case DataType::kFloat:
        return run_float(call, x->data<float>(), w->data<float>(), b ? b->data<float>() : nullptr,
                         z ? z->data<float>() : nullptr, y.data<float>(), threads);
      case DataType::kDouble:
        run_ref<double>(call, x->data<double>(), w->data<double>(), b ? b->data<double>() : nullptr,
                        z ? z->data<double>() : nullptr, y.data<double>(), threads);
        return ok_status();
      case DataType::kFloat16:
      case DataType::kBFloat16:
        return run_via_float(call, *x, *w, b, z, &y, threads);
      default:
        return unimplemented(ctx.node().describe(), ": dtype ", dtype_name(x->dtype()), " is not supported");
    }
  }

 private:
  // `xs` is X's logical shape (unblocked).
  Result<ConvCall> validate(const Node& node, const Shape& xs, const Tensor* x, const Tensor* w,
                            const Tensor* b) const {
    if (!x || !w) return invalid_argument(node.describe(), ": inputs X and W are required");
    if (xs.size() < 3) return invalid_argument(node.describe(), ": X must have rank >= 3, got ", x->describe());
    if (w->rank() != xs.size())
      return invalid_argument(node.describe(), ": W ", w->describe(), " must have the rank of X ", x->describe());
    if (w->dtype() != x->dtype() || (b && b->dtype() != x->dtype()))
      return invalid_argument(node.describe(), ": X, W and B must share a dtype");
    ConvCall c;
    ConvShape& s = c.shape;
    s.n = xs[0], s.c_in = xs[1], s.group = group_;
    int64_t grouped = 0;  // W's per-group channels times group
    const bool fits = group_ <= std::max<int64_t>(s.c_in, 1) && !mul_overflows(w->dim(1), group_, &grouped);
    if (!transpose_) {
      s.c_out = w->dim(0);
      if (!fits || grouped != s.c_in || s.c_out % group_ != 0)
        return invalid_argument(node.describe(), ": W ", w->describe(), " does not fit X ", x->describe(),
                                " with group ", group_);
    } else {
      s.c_out = grouped;
      if (!fits || w->dim(0) != s.c_in || s.c_in % group_ != 0)
        return invalid_argument(node.describe(), ": W ", w->describe(), " does not fit X ", x->describe(),
                                " with group ", group_);
    }
    if (b && (b->rank() != 1 || b->dim(0) != s.c_out))
      return invalid_argument(node.describe(), ": B ", b->describe(), " must have shape [", s.c_out, "]");
    std::vector<int64_t> in_sp(xs.begin() + 2, xs.end());
    std::vector<int64_t> kernel(w->shape().begin() + 2, w->shape().end());
    if (!attrs_.kernel_shape.empty() && attrs_.kernel_shape != kernel)
      return invalid_argument(node.describe(), ": kernel_shape ", shape_str(attrs_.kernel_shape),
                              " does not match W ", w->describe());
    if (transpose_) {
      HEARTH_ASSIGN_OR_RETURN(c.window,
                              resolve_transpose_window(attrs_, output_padding_, output_shape_, in_sp, kernel, node));
    } else {
      HEARTH_ASSIGN_OR_RETURN(c.window, resolve_window(attrs_, in_sp, kernel, node));
    }
    if (c.window.rank() > 3)
      return unimplemented(node.describe(), ": more than 3 spatial dims are not supported");
    s.w = to_window3(c.window);
    c.out_shape = {s.n, s.c_out};
    c.out_shape.insert(c.out_shape.end(), c.window.out.begin(), c.window.out.end());
    return c;
  }

  template <typename T>
  void run_ref(const ConvCall& c, const T* x, const T* w, const T* b, const T* z, T* y, int threads) const {
    std::vector<T> z_copy;  // the reference writes Y before adding Z
    if (z && z == y) {
      z_copy.assign(z, z + shape_numel(c.out_shape));
      z = z_copy.data();
    }
    if (transpose_) conv_transpose_ref<T>(c.shape, x, w, b, y, threads);
    else conv_ref<T>(c.shape, x, w, b, y, threads);
    if (z || fusion_.act != ConvActivation::kNone) apply_conv_fusion<T>(fusion_, z, y, shape_numel(c.out_shape));
  }

  // Winograd for the blocked 3x3 stride-1 convolutions it pays for, else oneDNN
  // when it takes the configuration, else the reference.
  Status run_float(const ConvCall& c, const float* x, const float* w, const float* b, const float* z, float* y,
                   int threads) {
    const bool has_bias = b != nullptr, has_z = z != nullptr;
    const bool w_const = const_w_.defined() && const_w_.dtype() == DataType::kFloat && const_w_.data<float>() == w;
    if (w_const && winograd_fits(c) && winograd_ready(c, w)) {
      WinogradShape s;
      s.n = c.shape.n, s.c_in = c.shape.c_in, s.c_out = c.shape.c_out;
      s.ih = c.window.in[0], s.iw = c.window.in[1], s.oh = c.window.out[0], s.ow = c.window.out[1];
      s.pad_top = c.window.pad_begin[0], s.pad_left = c.window.pad_begin[1];
      winograd_->run(s, x, b, z, y, fusion_, threads, scratch_);
      return ok_status();
    }
    if (!plan_tried_ || plan_in_ != c.window.in || plan_n_ != c.shape.n || plan_c_in_ != c.shape.c_in ||
        plan_c_out_ != c.shape.c_out || plan_bias_ != has_bias || plan_kernel_ != c.window.kernel ||
        plan_z_ != has_z) {
      plan_.reset();
      plan_tried_ = true;
      plan_in_ = c.window.in, plan_n_ = c.shape.n, plan_c_in_ = c.shape.c_in, plan_c_out_ = c.shape.c_out;
      plan_bias_ = has_bias, plan_kernel_ = c.window.kernel, plan_z_ = has_z;
      ConvFusion fusion = fusion_;
      fusion.sum = has_z;
      auto plan = DnnlConvPlan::create(transpose_, c.shape.n, c.shape.c_in, c.shape.c_out, group_, c.window,
                                       has_bias, fusion, x_blocked_, nchwc_);
      plan_ok_ = plan.ok();
      if (plan_ok_) plan_ = std::move(plan).value();
    }
    if (!plan_ok_ && nchwc_) return run_ref_blocked(c, x, w, b, z, y, threads);
    if (!plan_ok_) {
      run_ref<float>(c, x, w, b, z, y, threads);
      return ok_status();
    }
    return plan_->run(x, w, b, y, w_const, z, scratch_);
  }

  // Winograd F(2x2, 3x3) takes blocked 3x3 stride-1 convolutions with enough
  // channels for its products to pay for the transforms. HEARTH_CONV_WINOGRAD=0
  // turns it off (for side-by-side measurements against oneDNN).
  bool winograd_fits(const ConvCall& c) const {
    static const bool enabled = [] {
      const char* v = std::getenv("HEARTH_CONV_WINOGRAD");
      return v == nullptr || std::strcmp(v, "0") != 0;
    }();
    const Window& win = c.window;
    auto both = [](const std::vector<int64_t>& v, int64_t x) { return v.size() == 2 && v[0] == x && v[1] == x; };
    return enabled && nchwc_ && x_blocked_ && !transpose_ && group_ == 1 && both(win.kernel, 3) &&
           both(win.strides, 1) && both(win.dilations, 1) && c.shape.c_in >= kWinogradMinChannels &&
           c.shape.c_out >= kWinogradMinChannels && WinogradConv3x3::fusable(fusion_) &&
           WinogradConv3x3::supported();
  }
  static constexpr int64_t kWinogradMinChannels = 32;

  // Builds the transformed weights on the first call (W is constant); false
  // when there was no memory for them, and oneDNN then keeps the layer.
  bool winograd_ready(const ConvCall& c, const float* w) {
    if (winograd_refused_) return false;
    if (winograd_ && winograd_->c_in() == c.shape.c_in && winograd_->c_out() == c.shape.c_out) return true;
    winograd_.reset();
    try {
      winograd_ = std::make_unique<WinogradConv3x3>(c.shape.c_in, c.shape.c_out, w);
    } catch (const std::bad_alloc&) {
      winograd_refused_ = true;
    }
    return winograd_ != nullptr;
  }

  // The reference on plain copies of blocked operands (oneDNN refused the shape).
  Status run_ref_blocked(const ConvCall& c, const float* x, const float* w, const float* b, const float* z, float* y,
                         int threads) {
    const int64_t in_plane = shape_numel(c.window.in), out_plane = shape_numel(c.window.out);
    Tensor xp, zp;
    if (x_blocked_) {
      xp = Tensor(DataType::kFloat, {c.shape.n * c.shape.c_in * in_plane});
      nchwc_to_plain(x, xp.data<float>(), c.shape.n, c.shape.c_in, in_plane, threads);
      x = xp.data<float>();
    }
    if (z) {
      zp = Tensor(DataType::kFloat, {c.shape.n * c.shape.c_out * out_plane});
      nchwc_to_plain(z, zp.data<float>(), c.shape.n, c.shape.c_out, out_plane, threads);
      z = zp.data<float>();
    }
    Tensor yp(DataType::kFloat, c.out_shape);
    run_ref<float>(c, x, w, b, z, yp.data<float>(), threads);
    nchwc_from_plain(yp.data<float>(), y, c.shape.n, c.shape.c_out, out_plane, threads);
    return ok_status();
  }

  Status run_via_float(const ConvCall& c, const Tensor& x, const Tensor& w, const Tensor* b, const Tensor* z,
                       Tensor* y, int threads) {
    HEARTH_ASSIGN_OR_RETURN(Tensor xf, cast_tensor(x, DataType::kFloat));
    HEARTH_ASSIGN_OR_RETURN(Tensor wf, cast_tensor(w, DataType::kFloat));
    Tensor bf;
    if (b) {
      HEARTH_ASSIGN_OR_RETURN(bf, cast_tensor(*b, DataType::kFloat));
    }
    Tensor zf;
    if (z) {
      HEARTH_ASSIGN_OR_RETURN(zf, cast_tensor(*z, DataType::kFloat));
    }
    Tensor yf(DataType::kFloat, y->shape());
    HEARTH_RETURN_IF_ERROR(run_float(c, xf.data<float>(), wf.data<float>(), b ? bf.data<float>() : nullptr,
                                     z ? zf.data<float>() : nullptr, yf.data<float>(), threads));
    HEARTH_ASSIGN_OR_RETURN(Tensor yc, cast_tensor(yf, y->dtype()));
    std::copy_n(static_cast<const char*>(yc.raw_data()), yc.nbytes(), static_cast<char*>(y->raw_data()));
    return ok_status();
  }

  bool transpose_;
  WindowAttrs attrs_;
  int64_t group_ = 1;
  std::vector<int64_t> output_padding_, output_shape_;
  Tensor const_w_;  // the initializer feeding W, when there is one (shares its memory)
  bool fused_ = false;
  bool nchwc_ = false, x_blocked_ = false;  // blocked-layout Conv (graph/nchwc.h); its X is blocked
  Allocator* scratch_ = nullptr;  // the running session's pool, for oneDNN's blocked buffers
  ConvFusion fusion_;  // FusedConv's activation (sum is decided per call by Z)
  std::unique_ptr<WinogradConv3x3> winograd_;  // built on the first call that fits (constant W)
  bool winograd_refused_ = false;               // building it ran out of memory
  // oneDNN plan for the last seen shapes.
  std::unique_ptr<DnnlConvPlan> plan_;
  bool plan_tried_ = false, plan_ok_ = false, plan_bias_ = false, plan_z_ = false;
  int64_t plan_n_ = -1, plan_c_in_ = -1, plan_c_out_ = -1;
  std::vector<int64_t> plan_in_, plan_kernel_;
};

class ConvKernel : public ConvKernelBase {
 public:
  ConvKernel() : ConvKernelBase(false) {}
};

class ConvTransposeKernel : public ConvKernelBase {
 public:
  ConvTransposeKernel() : ConvKernelBase(true) {}
};

}  // namespace

void register_conv_kernels(KernelRegistry& r) {
  r.add({"Conv", "", 1, kMaxOpset, float_types(), kernel_factory<ConvKernel>()});
  r.add({"ConvTranspose", "", 1, kMaxOpset, float_types(), kernel_factory<ConvTransposeKernel>()});
  r.add({"FusedConv", "com.microsoft", 1, kMaxOpset, float_types(), kernel_factory<ConvKernel>()});
  r.add({"Conv", kNchwcDomain, 1, kMaxOpset, {DataType::kFloat}, kernel_factory<ConvKernel>()});
}

}  // namespace hearth
