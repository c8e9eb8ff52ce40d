// Row-wise normalizations: LayerNormalization, InstanceNormalization,
// MeanVarianceNormalization and LRN. Each row's statistics are computed in
// double; rows run in parallel (OpenMP) when the tensor is large. float32
// LayerNormalization with a per-element Scale/B and no statistics outputs
// runs on oneDNN's layer_normalization primitive instead (float statistics,
// vectorized and threaded: BERT's [128, 256] rows went from ~50 us to ~10 us).
#include <algorithm>
#include <limits>
#include <unordered_map>

#include "kernels/dnnl_common.h"
#include "kernels/kernel.h"
#include "kernels/norm_common.h"

namespace hearth {

namespace {

constexpr int64_t kParallelThreshold = 65536;

Status check_x(const KernelContext& ctx, size_t min_rank) {
  const Node& node = ctx.node();
  const Tensor* x = ctx.input(0);
  if (!x) return invalid_argument(node.describe(), ": input X is missing");
  if (!norm_supported_type(x->dtype())) {
    return unimplemented(node.describe(), ": element type ", dtype_name(x->dtype()), " is not supported");
  }
  if (x->rank() < min_rank) {
    return invalid_argument(node.describe(), ": X must have rank >= ", min_rank, ", got ", shape_str(x->shape()));
  }
  return ok_status();
}

// Expands `p` (unidirectionally broadcastable to `target`) into numel(target) values.
template <typename T>
Result<std::vector<T>> expand_param(const Tensor& p, const Shape& target, const Node& node, const char* name) {
  const size_t r = target.size();
  bool ok = p.rank() <= r;
  for (size_t d = 0; ok && d < p.rank(); ++d) {
    const int64_t pd = p.dim(p.rank() - 1 - d), td = target[r - 1 - d];
    ok = pd == td || pd == 1;
  }
  if (!ok) {
    return invalid_argument(node.describe(), ": ", name, " of shape ", shape_str(p.shape()),
                            " does not broadcast to the normalized shape ", shape_str(target));
  }
  const int64_t D = shape_numel(target);
  std::vector<T> out(static_cast<size_t>(D));
  if (p.numel() == D) {
    std::copy(p.data<T>(), p.data<T>() + D, out.begin());
    return out;
  }
  for (int64_t i = 0; i < D; ++i) {
    int64_t rem = i, off = 0, stride = 1;
    for (size_t d = 0; d < r; ++d) {
      const size_t td = r - 1 - d;
      const int64_t idx = rem % target[td];
      rem /= target[td];
      if (d < p.rank()) {
        const int64_t pd = p.dim(p.rank() - 1 - d);
        if (pd != 1) off += idx * stride;
        stride *= pd;
      }
    }
    out[i] = p.data<T>()[off];
  }
  return out;
}

// oneDNN layer normalization over rows x [rows, D], y = (x - mean) / sqrt(var + eps) * scale + shift.
class DnnlLayerNorm {
 public:
  // False when oneDNN declines (the caller runs the reference).
  bool run(const float* x, const float* scale, const float* shift, float* y, int64_t rows, int64_t D, float eps) {
    try {
      if (!ready_ || rows != rows_ || D != d_ || (shift != nullptr) != shift_ || eps != eps_) {
        ready_ = false;
        const dnnl::memory::desc md({rows, D}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
        auto flags = dnnl::normalization_flags::use_scale;
        if (shift) flags = flags | dnnl::normalization_flags::use_shift;
        dnnl::layer_normalization_forward::primitive_desc pd(
            dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference, md, eps, flags),
            dnnl_cpu_engine());
        prim_ = dnnl::layer_normalization_forward(pd);
        auto& eng = dnnl_cpu_engine();
        src_ = dnnl::memory(md, eng, nullptr);
        dst_ = dnnl::memory(md, eng, nullptr);
        const dnnl::memory::desc pmd({D}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a);
        scale_ = dnnl::memory(pmd, eng, nullptr);
        shift_mem_ = dnnl::memory(pmd, eng, nullptr);
        rows_ = rows, d_ = D, shift_ = shift != nullptr, eps_ = eps, ready_ = true;
      }
      thread_local dnnl::stream stream(dnnl_cpu_engine());
      src_.set_data_handle(const_cast<float*>(x));
      dst_.set_data_handle(y);
      scale_.set_data_handle(const_cast<float*>(scale));
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}, {DNNL_ARG_SCALE, scale_}};
      if (shift) {
        shift_mem_.set_data_handle(const_cast<float*>(shift));
        args[DNNL_ARG_SHIFT] = shift_mem_;
      }
      prim_.execute(stream, args);
      stream.wait();
      return true;
    } catch (const dnnl::error&) {
      ready_ = false;
      return false;
    }
  }

 private:
  dnnl::layer_normalization_forward prim_;
  dnnl::memory src_, dst_, scale_, shift_mem_;
  int64_t rows_ = -1, d_ = -1;
  bool shift_ = false, ready_ = false;
  float eps_ = 0;
};

// True when `p` holds exactly one value per element of `norm_shape` in its order
// (its shape is norm_shape, possibly with leading 1s).
bool per_element(const Tensor* p, const Shape& norm_shape) {
  if (!p || p->dtype() != DataType::kFloat || p->rank() < norm_shape.size()) return false;
  const size_t lead = p->rank() - norm_shape.size();
  for (size_t i = 0; i < lead; ++i)
    if (p->dim(i) != 1) return false;
  return std::equal(norm_shape.begin(), norm_shape.end(), p->shape().begin() + lead);
}

class LayerNormKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", -1);
    epsilon_ = info.node.attr_float("epsilon", 1e-5f);
    const int64_t stash = info.node.attr_int("stash_type", 1);
    if (stash != 1 && stash != 16) {
      return invalid_argument("stash_type ", stash, " is not float (1) or bfloat16 (16)");
    }
    stash_type_ = static_cast<DataType>(stash);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    HEARTH_RETURN_IF_ERROR(check_x(ctx, 1));
    if (!ctx.input(1)) return invalid_argument(node.describe(), ": input Scale is missing");
    const Tensor& x_in = *ctx.input(0);
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_, static_cast<int64_t>(x_in.rank()), node));
    {
      const Shape norm_shape(x_in.shape().begin() + axis, x_in.shape().end());
      const int64_t D = shape_numel(norm_shape);
      const Tensor* scale = ctx.input(1);
      const Tensor* bias = ctx.input(2);
      const bool stats = (node.outputs.size() > 1 && !node.outputs[1].empty()) ||
                         (node.outputs.size() > 2 && !node.outputs[2].empty());
      if (x_in.dtype() == DataType::kFloat && D > 0 && x_in.numel() > 0 && !stats &&
          per_element(scale, norm_shape) && (!bias || per_element(bias, norm_shape))) {
        Tensor& y = ctx.allocate_output(0, DataType::kFloat, x_in.shape());
        if (dnnl_.run(x_in.data<float>(), scale->data<float>(), bias ? bias->data<float>() : nullptr,
                      y.data<float>(), x_in.numel() / D, D, epsilon_))
          return ok_status();
      }
    }
    const DataType compute = norm_compute_type(x_in.dtype());
    HEARTH_ASSIGN_OR_RETURN(Tensor x, norm_input(ctx, 0, compute));
    HEARTH_ASSIGN_OR_RETURN(Tensor scale, norm_input(ctx, 1, compute));
    HEARTH_ASSIGN_OR_RETURN(Tensor bias, norm_input(ctx, 2, compute));
    const Shape norm_shape(x.shape().begin() + axis, x.shape().end());
    Shape stat_shape(x.shape().begin(), x.shape().begin() + axis);
    stat_shape.resize(x.rank(), 1);
    NormOutputs outs(ctx, compute);
    Tensor& y = outs.allocate(0, x_in.dtype(), x.shape());
    Tensor mean_out, inv_out;
    if (outs.wanted(1)) mean_out = outs.allocate(1, stash_type_, stat_shape);
    if (outs.wanted(2)) inv_out = outs.allocate(2, stash_type_, stat_shape);
    // Nothing to normalize: the normalized shape's dims may still be huge, and the
    // expanded parameters would be as large as they say. Statistics of nothing are NaN.
    if (x.numel() == 0) {
      for (Tensor* t : {&mean_out, &inv_out}) {
        if (!t->defined()) continue;
        HEARTH_RETURN_IF_ERROR(norm_dispatch(t->dtype(), [&](auto tag) -> Status {
          using T = decltype(tag);
          std::fill(t->data<T>(), t->data<T>() + t->numel(), std::numeric_limits<T>::quiet_NaN());
          return ok_status();
        }));
      }
      return outs.finish();
    }
    HEARTH_RETURN_IF_ERROR(norm_dispatch(compute, [&](auto tag) -> Status {
      using T = decltype(tag);
      HEARTH_ASSIGN_OR_RETURN(std::vector<T> s, expand_param<T>(scale, norm_shape, node, "Scale"));
      std::vector<T> b(s.size(), T(0));
      if (bias.defined()) { HEARTH_ASSIGN_OR_RETURN(b, expand_param<T>(bias, norm_shape, node, "B")); }
      run<T>(x, s, b, y, mean_out, inv_out, shape_numel(norm_shape));
      return ok_status();
    }));
    return outs.finish();
  }

 private:
  template <typename T>
  void run(const Tensor& x, const std::vector<T>& s, const std::vector<T>& b, Tensor& y, Tensor& mean_out,
           Tensor& inv_out, int64_t D) const {
    const int64_t rows = D == 0 ? 0 : x.numel() / D;
    const T* xd = x.data<T>();
    T* yd = y.data<T>();
    T* md = mean_out.defined() ? mean_out.data<T>() : nullptr;
    T* id = inv_out.defined() ? inv_out.data<T>() : nullptr;
#pragma omp parallel for if (x.numel() > kParallelThreshold)
    for (int64_t r = 0; r < rows; ++r) {
      double m = 0.0, v = 0.0;
      row_mean_var(xd + r * D, D, &m, &v);
      const double inv = 1.0 / std::sqrt(v + static_cast<double>(epsilon_));
      const T tm = static_cast<T>(m), ti = static_cast<T>(inv);
      const T* xr = xd + r * D;
      T* yr = yd + r * D;
      for (int64_t j = 0; j < D; ++j) yr[j] = (xr[j] - tm) * ti * s[j] + b[j];
      if (md) md[r] = tm;
      if (id) id[r] = ti;
    }
  }

  int64_t axis_ = -1;
  float epsilon_ = 1e-5f;
  DataType stash_type_ = DataType::kFloat;
  DnnlLayerNorm dnnl_;
};

class InstanceNormKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    epsilon_ = info.node.attr_float("epsilon", 1e-5f);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    HEARTH_RETURN_IF_ERROR(check_x(ctx, 2));
    const Tensor& x_in = *ctx.input(0);
    const int64_t C = x_in.dim(1);
    for (size_t i = 1; i <= 2; ++i) {
      const Tensor* p = ctx.input(i);
      if (!p) return invalid_argument(node.describe(), ": required input ", i, " is missing");
      if (p->numel() != C) {
        return invalid_argument(node.describe(), ": input ", i, " has ", p->numel(), " elements, expected C = ", C);
      }
    }
    const DataType compute = norm_compute_type(x_in.dtype());
    HEARTH_ASSIGN_OR_RETURN(Tensor x, norm_input(ctx, 0, compute));
    HEARTH_ASSIGN_OR_RETURN(Tensor scale, norm_input(ctx, 1, compute));
    HEARTH_ASSIGN_OR_RETURN(Tensor bias, norm_input(ctx, 2, compute));
    NormOutputs outs(ctx, compute);
    Tensor& y = outs.allocate(0, x_in.dtype(), x.shape());
    HEARTH_RETURN_IF_ERROR(norm_dispatch(compute, [&](auto tag) {
      using T = decltype(tag);
      run<T>(x, scale, bias, y);
      return ok_status();
    }));
    return outs.finish();
  }

 private:
  template <typename T>
  void run(const Tensor& x, const Tensor& scale, const Tensor& bias, Tensor& y) const {
    const int64_t N = x.dim(0), C = x.dim(1), S = N * C == 0 ? 0 : x.numel() / (N * C);
    const T* xd = x.data<T>();
    T* yd = y.data<T>();
#pragma omp parallel for if (x.numel() > kParallelThreshold)
    for (int64_t nc = 0; nc < N * C; ++nc) {
      const int64_t c = nc % C;
      double m = 0.0, v = 0.0;
      row_mean_var(xd + nc * S, S, &m, &v);
      const double a = scale.data<T>()[c] / std::sqrt(v + static_cast<double>(epsilon_));
      const T ta = static_cast<T>(a), tb = static_cast<T>(bias.data<T>()[c] - m * a);
      for (int64_t s = 0; s < S; ++s) yd[nc * S + s] = xd[nc * S + s] * ta + tb;
    }
  }

  float epsilon_ = 1e-5f;
};

class LrnKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Node& n = info.node;
    size_ = n.attr_int("size", 0);
    if (size_ <= 0) return invalid_argument("attribute size must be a positive integer, got ", size_);
    alpha_ = n.attr_float("alpha", 1e-4f);
    beta_ = n.attr_float("beta", 0.75f);
    bias_ = n.attr_float("bias", 1.0f);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    HEARTH_RETURN_IF_ERROR(check_x(ctx, 2));
    const Tensor& x_in = *ctx.input(0);
    const DataType compute = norm_compute_type(x_in.dtype());
    HEARTH_ASSIGN_OR_RETURN(Tensor x, norm_input(ctx, 0, compute));
    NormOutputs outs(ctx, compute);
    Tensor& y = outs.allocate(0, x_in.dtype(), x.shape());
    HEARTH_RETURN_IF_ERROR(norm_dispatch(compute, [&](auto tag) {
      using T = decltype(tag);
      run<T>(x, y);
      return ok_status();
    }));
    return outs.finish();
  }

 private:
  // y = x / (bias + alpha / size * sum of x^2 over the channel window) ^ beta.
  template <typename T>
  void run(const Tensor& x, Tensor& y) const {
    const int64_t N = x.dim(0), C = x.dim(1), S = N * C == 0 ? 0 : x.numel() / (N * C);
    const int64_t lo = (size_ - 1) / 2, hi = size_ / 2;  // floor and ceil of (size - 1) / 2
    const T* xd = x.data<T>();
    T* yd = y.data<T>();
    const double scale = static_cast<double>(alpha_) / static_cast<double>(size_);
#pragma omp parallel if (x.numel() > kParallelThreshold)
    {
      std::vector<double> acc(static_cast<size_t>(S));
#pragma omp for
      for (int64_t nc = 0; nc < N * C; ++nc) {
        const int64_t n = nc / C, c = nc % C;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t k = std::max<int64_t>(0, c - lo); k <= std::min(C - 1, c + hi); ++k) {
          const T* xr = xd + (n * C + k) * S;
          for (int64_t s = 0; s < S; ++s) acc[s] += static_cast<double>(xr[s]) * xr[s];
        }
        const T* xr = xd + nc * S;
        T* yr = yd + nc * S;
        for (int64_t s = 0; s < S; ++s) {
          yr[s] = static_cast<T>(xr[s] / std::pow(static_cast<double>(bias_) + scale * acc[s], beta_));
        }
      }
    }
  }

  int64_t size_ = 0;
  float alpha_ = 1e-4f, beta_ = 0.75f, bias_ = 1.0f;
};

class MvnKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axes_ = info.node.attr_ints("axes", {0, 2, 3});
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    HEARTH_RETURN_IF_ERROR(check_x(ctx, 1));
    const Tensor& x_in = *ctx.input(0);
    const int64_t rank = static_cast<int64_t>(x_in.rank());
    std::vector<bool> reduced(rank, false);
    for (int64_t a : axes_) {
      HEARTH_ASSIGN_OR_RETURN(int64_t ax, normalize_axis(a, rank, node));
      reduced[ax] = true;
    }
    const DataType compute = norm_compute_type(x_in.dtype());
    HEARTH_ASSIGN_OR_RETURN(Tensor x, norm_input(ctx, 0, compute));
    NormOutputs outs(ctx, compute);
    Tensor& y = outs.allocate(0, x_in.dtype(), x.shape());
    if (x.numel() == 0) return outs.finish();  // no groups to sum, however many the kept dims say
    HEARTH_RETURN_IF_ERROR(norm_dispatch(compute, [&](auto tag) {
      using T = decltype(tag);
      run<T>(x, reduced, y);
      return ok_status();
    }));
    return outs.finish();
  }

 private:
  // Calls fn(element index, group index) for every element; the group index
  // numbers the positions of the kept (non-reduced) dims.
  template <typename Fn>
  static void for_each_group(const Shape& shape, const std::vector<bool>& reduced, Fn&& fn) {
    const size_t r = shape.size();
    std::vector<int64_t> gstride(r + 1, 0);  // +1: keeps GCC 12 from a false -Wfree-nonheap-object
    int64_t g = 1;
    for (size_t d = r; d-- > 0;) {
      if (!reduced[d]) {
        gstride[d] = g;
        g *= shape[d];
      }
    }
    std::vector<int64_t> idx(r + 1, 0);
    int64_t group = 0;
    const int64_t n = shape_numel(shape);
    for (int64_t i = 0; i < n; ++i) {
      fn(i, group);
      for (size_t d = r; d-- > 0;) {
        group += gstride[d];
        if (++idx[d] < shape[d]) break;
        group -= gstride[d] * shape[d];
        idx[d] = 0;
      }
    }
  }

  // y = (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9), statistics over the reduced axes.
  template <typename T>
  static void run(const Tensor& x, const std::vector<bool>& reduced, Tensor& y) {
    int64_t groups = 1;
    for (size_t d = 0; d < x.rank(); ++d)
      if (!reduced[d]) groups *= x.dim(d);
    const int64_t count = groups == 0 ? 0 : x.numel() / groups;
    std::vector<double> sum(groups, 0.0), sumsq(groups, 0.0);
    const T* xd = x.data<T>();
    T* yd = y.data<T>();
    for_each_group(x.shape(), reduced, [&](int64_t i, int64_t g) {
      sum[g] += xd[i];
      sumsq[g] += static_cast<double>(xd[i]) * xd[i];
    });
    for (int64_t g = 0; g < groups; ++g) {
      const double m = sum[g] / static_cast<double>(count);
      const double var = std::max(0.0, sumsq[g] / static_cast<double>(count) - m * m);
      sum[g] = m;
      sumsq[g] = 1.0 / (std::sqrt(var) + 1e-9);
    }
    for_each_group(x.shape(), reduced,
                   [&](int64_t i, int64_t g) { yd[i] = static_cast<T>((xd[i] - sum[g]) * sumsq[g]); });
  }

  std::vector<int64_t> axes_;
};

}  // namespace

void register_norm_layer_kernels(KernelRegistry& r) {
  const std::vector<DataType> types = {DataType::kFloat, DataType::kDouble, DataType::kFloat16, DataType::kBFloat16};
  r.add({"LayerNormalization", "", 17, kMaxOpset, types, kernel_factory<LayerNormKernel>()});
  // The optimizer's fused form of the spelled-out pattern, for models of any opset.
  r.add({"LayerNormalization", "ai.hearth", 1, kMaxOpset, types, kernel_factory<LayerNormKernel>()});
  r.add({"InstanceNormalization", "", 1, kMaxOpset, types, kernel_factory<InstanceNormKernel>()});
  r.add({"LRN", "", 1, kMaxOpset, types, kernel_factory<LrnKernel>()});
  r.add({"MeanVarianceNormalization", "", 9, kMaxOpset, types, kernel_factory<MvnKernel>()});
}

}  // namespace hearth
