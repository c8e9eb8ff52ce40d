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

#include "core/machine.h"
#include "kernels/conv_dnnl.h"
#include "kernels/conv_fusion.h"
#include "kernels/conv_geometry.h"
#include "kernels/conv_ref.h"
#include "kernels/conv_winograd.h"
#include "graph/nchwc.h"
#include "kernels/kernel.h"
#include "kernels/nchwc_layout.h"
#include "kernels/path_tuner.h"
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
    tuner_ = info.tuner;
    node_name_ = info.node.describe();
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

  // The layer's path, chosen once per shape (choose_path): Winograd, oneDNN
  // held to the blocked layout, oneDNN in its own layout, or the reference when
  // oneDNN refuses the configuration.
  Status run_float(const ConvCall& c, const float* x, const float* w, const float* b, const float* z, float* y,
                   int threads) {
    const bool has_bias = b != nullptr, has_z = z != nullptr;
    const bool w_const = const_w_.defined() && const_w_.dtype() == DataType::kFloat && const_w_.data<float>() == w;
    if (!chosen_ || plan_in_ != c.window.in || plan_n_ != c.shape.n || plan_c_in_ != c.shape.c_in ||
        plan_c_out_ != c.shape.c_out || plan_bias_ != has_bias || plan_kernel_ != c.window.kernel ||
        plan_z_ != has_z || plan_w_const_ != w_const) {
      plan_in_ = c.window.in, plan_n_ = c.shape.n, plan_c_in_ = c.shape.c_in, plan_c_out_ = c.shape.c_out;
      plan_bias_ = has_bias, plan_kernel_ = c.window.kernel, plan_z_ = has_z, plan_w_const_ = w_const;
      HEARTH_RETURN_IF_ERROR(choose_path(c, x, w, b, z, threads, w_const));
    }
    return run_path(path_, c, x, w, b, z, y, threads, w_const);
  }

  enum class Path { kWinograd, kDnnlHeld, kDnnlNative, kReference };

  static const char* path_name(Path p) {
    switch (p) {
      case Path::kWinograd: return "winograd";
      case Path::kDnnlHeld: return "onednn";
      case Path::kDnnlNative: return "onednn-native";
      case Path::kReference: return "reference";
    }
    return "?";
  }

  Status run_path(Path path, const ConvCall& c, const float* x, const float* w, const float* b, const float* z,
                  float* y, int threads, bool w_const) {
    switch (path) {
      case Path::kWinograd: {
        if (!winograd_ready(c, w)) return resource_exhausted("no memory for the Winograd weights");
        WinogradShape s;
        s.n = c.shape.n, s.c_in = c.shape.c_in, s.c_out = c.shape.c_out;
        s.ih = c.window.in[0], s.iw = c.window.in[1], s.oh = c.window.out[0], s.ow = c.window.out[1];
        s.pad_top = c.window.pad_begin[0], s.pad_left = c.window.pad_begin[1];
        winograd_->run(s, x, b, z, y, fusion_, threads, scratch_);
        return ok_status();
      }
      case Path::kDnnlHeld:
      case Path::kDnnlNative: {
        std::unique_ptr<DnnlConvPlan>& plan = path == Path::kDnnlHeld ? held_plan_ : native_plan_;
        if (!plan && !make_plan(c, b, z, path == Path::kDnnlHeld, &plan))
          return unimplemented("oneDNN refused the configuration");
        return plan->run(x, w, b, y, w_const, z, scratch_);
      }
      case Path::kReference:
        if (nchwc_) return run_ref_blocked(c, x, w, b, z, y, threads);
        run_ref<float>(c, x, w, b, z, y, threads);
        return ok_status();
    }
    return internal_error("unknown convolution path");
  }

  bool make_plan(const ConvCall& c, const float* b, const float* z, bool hold, std::unique_ptr<DnnlConvPlan>* plan) {
    ConvFusion fusion = fusion_;
    fusion.sum = z != nullptr;
    auto made = DnnlConvPlan::create(transpose_, c.shape.n, c.shape.c_in, c.shape.c_out, group_, c.window,
                                     b != nullptr, fusion, x_blocked_, nchwc_, hold);
    if (!made.ok()) return false;
    *plan = std::move(made).value();
    return true;
  }

  // The layer's shape, attributes and threads: the tuning cache's key.
  std::string layer_key(const ConvCall& c, bool has_bias, bool has_z, int threads) const {
    std::string k = transpose_ ? "ConvTranspose" : "Conv";
    auto dims = [](const std::vector<int64_t>& v) {
      std::string out;
      for (size_t i = 0; i < v.size(); ++i) out += (i ? "x" : "") + std::to_string(v[i]);
      return out;
    };
    k += " n" + std::to_string(c.shape.n) + " c" + std::to_string(c.shape.c_in) + ">" + std::to_string(c.shape.c_out) +
         " g" + std::to_string(group_) + " in" + dims(c.window.in) + " k" + dims(c.window.kernel) + " s" +
         dims(c.window.strides) + " d" + dims(c.window.dilations) + " p" + dims(c.window.pad_begin) + "," +
         dims(c.window.pad_end) + (has_bias ? " bias" : "") + (has_z ? " sum" : "") + " act" +
         std::to_string(static_cast<int>(fusion_.act)) + (x_blocked_ ? " xb" : "") + (nchwc_ ? " yb" : "") + " t" +
         std::to_string(threads);
    return k;
  }

  // The candidates this layer has on this CPU and the heuristic's pick among
  // them (prefer_native), then the tuner's choice (measured, cached or that
  // heuristic), then the fallbacks when a path cannot be built.
  Status choose_path(const ConvCall& c, const float* x, const float* w, const float* b, const float* z, int threads,
                     bool w_const) {
    chosen_ = true;
    held_plan_.reset();
    native_plan_.reset();
    std::vector<Path> paths;
    if (w_const && winograd_fits(c)) paths.push_back(Path::kWinograd);
    paths.push_back(Path::kDnnlHeld);
    const bool wide_isa = nchwc_ && isa_at_least(IsaLevel::kAvx512) && !transpose_;
    if (wide_isa) paths.push_back(Path::kDnnlNative);
    size_t heuristic = 0;  // Winograd when it fits, else oneDNN held
    if (wide_isa && prefer_native(c, paths[0] == Path::kWinograd)) heuristic = paths.size() - 1;
    // oneDNN may refuse the configuration: its candidates then drop out.
    const std::string layer = tuner_ ? layer_key(c, b != nullptr, z != nullptr, threads) : std::string();
    if (!tuner_) {
      path_ = paths[heuristic];
    } else {
      // Measured runs write elsewhere (allocated on the first one: a cached choice
      // runs nothing), so a Z that is Y's memory stays as it is until the real run.
      Tensor y_tmp;
      auto measured_run = [&](Path p) -> Status {
        if (!y_tmp.defined()) y_tmp = Tensor(DataType::kFloat, {static_cast<int64_t>(shape_numel(c.out_shape))});
        return run_path(p, c, x, w, b, z, y_tmp.data<float>(), threads, w_const);
      };
      std::vector<PathTuner::Candidate> cands;
      for (Path p : paths) cands.push_back({path_name(p), [&measured_run, p] { return measured_run(p); }});
      path_ = paths[tuner_->choose(node_name_, layer, cands, heuristic)];
    }
    // Falls back along Winograd (no memory for its weights) -> oneDNN in its
    // layout -> oneDNN held -> the reference (oneDNN refused the configuration).
    if (path_ == Path::kWinograd && !winograd_ready(c, w)) path_ = Path::kDnnlHeld;
    if (path_ == Path::kDnnlNative && !native_plan_ && !make_plan(c, b, z, false, &native_plan_))
      path_ = Path::kDnnlHeld;
    if (path_ == Path::kDnnlHeld && !held_plan_ && !make_plan(c, b, z, true, &held_plan_))
      path_ = Path::kReference;
    // Only the chosen path keeps its packed weights.
    if (path_ != Path::kDnnlHeld) held_plan_.reset();
    if (path_ != Path::kDnnlNative) native_plan_.reset();
    if (path_ != Path::kWinograd) winograd_.reset();
    if (tuner_) {
      std::string detail;
      if (path_ == Path::kDnnlHeld) detail = held_plan_->implementation();
      else if (path_ == Path::kDnnlNative) detail = native_plan_->implementation();
      else if (path_ == Path::kReference) detail = "oneDNN refused the configuration";
      tuner_->annotate(node_name_, layer, detail);
    }
    return ok_status();
  }
  // The heuristic for oneDNN's own (16-channel, AVX-512) layout over the held
  // 8-channel one, from `hearth tune` on Zen 4 over the zoo (docs/PERFORMANCE.md,
  // "Results on Zen 4 (AVX-512)"), reorders included: 1x1 and depthwise layers
  // stay held (native took 0.86-5x their time, 1.1-1.4x typically); dense layers with a
  // window and >= 128 channels each side go native (0.62-0.90x), except the
  // stride-1 3x3 ones Winograd takes (0.53-0.77x of held) unless the plane is
  // 7x7 or smaller with >= 512 channels, where native won (0.70 against 0.86).
  bool prefer_native(const ConvCall& c, bool winograd) const {
    if (group_ != 1) return false;
    bool window = false;
    for (int64_t k : c.window.kernel) window |= k > 1;
    const int64_t narrow = std::min(c.shape.c_in, c.shape.c_out);
    if (!window || narrow < 128) return false;
    return !winograd || (shape_numel(c.window.out) <= 7 * 7 && narrow >= 512);
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
  PathTuner* tuner_ = nullptr;  // the session's, or null (heuristics)
  std::string node_name_;
  // The path and oneDNN plans for the last seen shapes.
  Path path_ = Path::kDnnlHeld;
  bool chosen_ = false;
  std::unique_ptr<DnnlConvPlan> held_plan_, native_plan_;
  bool plan_bias_ = false, plan_z_ = false, plan_w_const_ = false;
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
