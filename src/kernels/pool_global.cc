// Pooling family, part 2: GlobalAveragePool, GlobalMaxPool, GlobalLpPool,
// MaxUnpool (plain loops; the global pools are one contiguous
// reduction per channel plane).
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/conv_geometry.h"
#include "kernels/kernel.h"
#include "kernels/pool_kernels.h"

namespace hearth {
namespace {

enum class GlobalOp { kAvg, kMax, kLp };

template <GlobalOp kOp, typename T>
void global_pool(const T* x, T* y, int64_t planes, int64_t plane, double p, int threads) {
  const bool par = planes * plane > (1 << 16);
#pragma omp parallel for num_threads(threads) if (par) schedule(static)
  for (int64_t i = 0; i < planes; ++i) {
    const T* src = x + i * plane;
    if constexpr (kOp == GlobalOp::kMax) {
      T m = src[0];
      for (int64_t j = 1; j < plane; ++j) m = src[j] > m ? src[j] : m;
      y[i] = m;
    } else if constexpr (kOp == GlobalOp::kAvg) {
      // Eight partial sums: the compiler vectorizes them without reassociating.
      T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= plane; j += 8)
        for (int u = 0; u < 8; ++u) part[u] += src[j + u];
      T sum = 0;
      for (; j < plane; ++j) sum += src[j];
      for (int u = 0; u < 8; ++u) sum += part[u];
      y[i] = sum / static_cast<T>(plane);
    } else {
      double sum = 0;
      for (int64_t j = 0; j < plane; ++j) sum += std::pow(std::fabs(static_cast<double>(src[j])), p);
      y[i] = static_cast<T>(std::pow(sum, 1.0 / p));
    }
  }
}

template <GlobalOp kOp>
class GlobalPoolKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    p_ = info.node.attr_float("p", 2.0f);
    if (p_ <= 0) return invalid_argument("p must be positive, got ", p_);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    if (!x) return invalid_argument(node.describe(), ": input X is required");
    if (x->rank() < 3) return invalid_argument(node.describe(), ": X must have rank >= 3, got ", x->describe());
    Shape out_shape(x->rank(), 1);
    out_shape[0] = x->dim(0), out_shape[1] = x->dim(1);
    const int64_t planes = x->dim(0) * x->dim(1);
    const int64_t plane = planes == 0 ? 0 : x->numel() / planes;
    if (planes > 0 && plane == 0) return invalid_argument(node.describe(), ": empty spatial dims in ", x->describe());
    const int threads = std::max(1, ctx.num_threads());
    if (x->dtype() == DataType::kFloat16 || x->dtype() == DataType::kBFloat16) {
      HEARTH_ASSIGN_OR_RETURN(Tensor xf, cast_tensor(*x, DataType::kFloat));
      Tensor yf(DataType::kFloat, out_shape);
      global_pool<kOp, float>(xf.data<float>(), yf.data<float>(), planes, plane, p_, threads);
      HEARTH_ASSIGN_OR_RETURN(Tensor yc, cast_tensor(yf, x->dtype()));
      ctx.set_output(0, yc);
      return ok_status();
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), out_shape);
    if (x->dtype() == DataType::kFloat) {
      global_pool<kOp, float>(x->data<float>(), y.data<float>(), planes, plane, p_, threads);
    } else if (x->dtype() == DataType::kDouble) {
      global_pool<kOp, double>(x->data<double>(), y.data<double>(), planes, plane, p_, threads);
    } else {
      return unimplemented(node.describe(), ": dtype ", dtype_name(x->dtype()), " is not supported");
    }
    return ok_status();
  }

 private:
  double p_ = 2.0;
};

// MaxUnpool: scatters X into zeros at the positions in I. Indices address the
// default output shape ((in-1)*stride + kernel - pads); with an explicit
// output_shape each index is unraveled there and raveled into the given shape
// (what the ONNX reference data does).
class MaxUnpoolKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    HEARTH_RETURN_IF_ERROR(parse_window_attrs(info.node, &attrs_));
    if (attrs_.kernel_shape.empty()) return invalid_argument("kernel_shape is required");
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    const Tensor* ind = ctx.input(1);
    if (!x || !ind) return invalid_argument(node.describe(), ": inputs X and I are required");
    if (x->rank() < 3) return invalid_argument(node.describe(), ": X must have rank >= 3, got ", x->describe());
    if (ind->dtype() != DataType::kInt64 || ind->shape() != x->shape())
      return invalid_argument(node.describe(), ": I ", ind->describe(), " must be int64 with the shape of X ",
                              x->describe());
    HEARTH_ASSIGN_OR_RETURN(Shape def_shape, default_shape(node, *x));
    Shape out_shape = def_shape;
    if (const Tensor* os = ctx.input(2)) {
      HEARTH_ASSIGN_OR_RETURN(out_shape, tensor_to_int64s(*os));
      if (out_shape.size() != x->rank())
        return invalid_argument(node.describe(), ": output_shape ", shape_str(out_shape), " must have rank ",
                                x->rank());
      for (size_t i = 0; i < out_shape.size(); ++i)
        if (out_shape[i] < (i < 2 ? x->dim(i) : def_shape[i]))
          return invalid_argument(node.describe(), ": output_shape ", shape_str(out_shape),
                                  " is smaller than the default ", shape_str(def_shape));
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), out_shape);
    const size_t es = dtype_size(x->dtype());
    std::fill_n(static_cast<char*>(y.raw_data()), y.nbytes(), 0);
    const std::vector<int64_t> def_strides = shape_strides(def_shape), out_strides = shape_strides(out_shape);
    const int64_t def_numel = shape_numel(def_shape);
    const int64_t* idx = ind->data<int64_t>();
    const char* src = static_cast<const char*>(x->raw_data());
    char* dst = static_cast<char*>(y.raw_data());
    for (int64_t i = 0; i < x->numel(); ++i) {
      int64_t flat = idx[i];
      if (flat < 0 || flat >= def_numel)
        return invalid_argument(node.describe(), ": index ", flat, " is out of range for output ",
                                shape_str(def_shape));
      int64_t off = 0;
      for (size_t d = 0; d < def_shape.size(); ++d) {
        off += (flat / def_strides[d]) * out_strides[d];
        flat %= def_strides[d];
      }
      std::copy_n(src + i * es, es, dst + off * es);
    }
    return ok_status();
  }

 private:
  Result<Shape> default_shape(const Node& node, const Tensor& x) const {
    const std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end());
    WindowAttrs a = attrs_;
    a.auto_pad = AutoPad::kNotSet;
    HEARTH_ASSIGN_OR_RETURN(Window w, resolve_window(a, in_sp, attrs_.kernel_shape, node));  // validates ranks
    Shape s = {x.dim(0), x.dim(1)};
    for (size_t i = 0; i < w.rank(); ++i) {
      const int64_t v = (w.in[i] - 1) * w.strides[i] + w.kernel[i] - w.pad_begin[i] - w.pad_end[i];
      if (v <= 0) return invalid_argument(node.describe(), ": default output size ", v, " is not positive");
      s.push_back(v);
    }
    return s;
  }

  WindowAttrs attrs_;
};


}  // namespace

void register_pool_global_kernels(KernelRegistry& r) {
  r.add({"GlobalAveragePool", "", 1, kMaxOpset, float_types(), kernel_factory<GlobalPoolKernel<GlobalOp::kAvg>>()});
  r.add({"GlobalMaxPool", "", 1, kMaxOpset, float_types(), kernel_factory<GlobalPoolKernel<GlobalOp::kMax>>()});
  r.add({"GlobalLpPool", "", 1, kMaxOpset, float_types(), kernel_factory<GlobalPoolKernel<GlobalOp::kLp>>()});
  r.add({"MaxUnpool", "", 9, kMaxOpset, all_types(), kernel_factory<MaxUnpoolKernel>()});
}

}  // namespace hearth
