// Shared machinery for the elementwise and activation kernel families:
// value loading/storing for 16-bit floats, type-set dispatch, a parallel
// element loop, and PointwiseKernel<Op>, the one-input/one-output kernel that
// Abs, Exp, Relu, Sigmoid, ... are built from.
//
// An Op for PointwiseKernel is a small struct:
//   struct LeakyReluOp {
//     static constexpr TypeSet kTypes = TypeSet::kFloat;   // dtypes it accepts
//     float alpha = 0.01f;
//     Status init(const KernelInfo& info);                  // optional: attributes
//     template <typename C> C operator()(C x) const;        // C = compute type
//   };
// Float16/BFloat16 are computed in float; every other type in itself.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "core/status.h"
#include "core/tensor.h"
#include "kernels/kernel.h"

namespace hearth {

// Compute type of a storage type: float for the 16-bit floats, else itself.
template <typename T>
struct ComputeOf {
  using type = T;
};
template <>
struct ComputeOf<Float16> {
  using type = float;
};
template <>
struct ComputeOf<BFloat16> {
  using type = float;
};
template <typename T>
using compute_t = typename ComputeOf<T>::type;

template <typename T>
inline compute_t<T> load_value(T v) {
  if constexpr (std::is_same_v<T, Float16>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<T, BFloat16>) return bfloat16_to_float(v.bits);
  else return v;
}

template <typename T>
inline T store_value(compute_t<T> v) {
  if constexpr (std::is_same_v<T, Float16>) return Float16{float_to_half(v)};
  else if constexpr (std::is_same_v<T, BFloat16>) return BFloat16{float_to_bfloat16(v)};
  else return v;
}

template <typename T>
constexpr bool is_half_v = std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;
template <typename T>
constexpr bool is_floatlike_v = std::is_floating_point_v<T> || is_half_v<T>;

// Which element types an op accepts.
enum class TypeSet {
  kFloat,    // float, double, float16, bfloat16
  kSigned,   // kFloat + signed integers
  kNumeric,  // kFloat + all integers
  kAll,      // kNumeric + bool
};

template <typename T>
constexpr bool type_in_set(TypeSet s) {
  if constexpr (std::is_same_v<T, bool>) return s == TypeSet::kAll;
  else if constexpr (is_floatlike_v<T>) return true;
  else if constexpr (std::is_signed_v<T>) return s != TypeSet::kFloat;
  else return s == TypeSet::kNumeric || s == TypeSet::kAll;
}

// Elements above which a loop is worth splitting across OpenMP threads.
constexpr int64_t kParallelThreshold = 64 * 1024;

// Runs body(begin, end) over [0, n), split across up to num_threads threads
// when n is large. body must be safe to run concurrently on disjoint ranges.
template <typename Body>
void parallel_ranges(int64_t n, int num_threads, Body&& body) {
  int64_t chunks = std::min<int64_t>(std::max(num_threads, 1), std::max<int64_t>(n / (kParallelThreshold / 2), 1));
  if (chunks <= 1) {
    body(int64_t{0}, n);
    return;
  }
  const int64_t per = (n + chunks - 1) / chunks;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) body(c * per, std::min(n, (c + 1) * per));
}

// Like parallel_ranges over `rows` rows that each cost about `row_work` elements.
template <typename Body>
void parallel_rows(int64_t rows, int64_t row_work, int num_threads, Body&& body) {
  const int64_t work = rows * std::max<int64_t>(row_work, 1);
  int64_t chunks = std::min<int64_t>({std::max(num_threads, 1), std::max<int64_t>(rows, 1),
                                      std::max<int64_t>(work / (kParallelThreshold / 2), 1)});
  if (chunks <= 1) {
    body(int64_t{0}, rows);
    return;
  }
  const int64_t per = (rows + chunks - 1) / chunks;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) body(std::min(rows, c * per), std::min(rows, (c + 1) * per));
}

// The SIMD inner loop of unary_map. `op` by value and restrict pointers let
// the compiler keep op's parameters in registers. The build uses -O2, which
// does not vectorize most loops by itself: `omp simd` asks for it.
template <typename T, typename U, typename Op>
void unary_map_range(const T* __restrict x, U* __restrict y, int64_t b, int64_t e, Op op) {
  if constexpr (is_half_v<T> || is_half_v<U>) {
    for (int64_t i = b; i < e; ++i) y[i] = store_value<U>(op(load_value(x[i])));
  } else {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) y[i] = op(x[i]);
  }
}

// The same over one array in place (no restrict: x and y are the same memory).
template <typename T, typename Op>
void unary_map_range_in_place(T* y, int64_t b, int64_t e, Op op) {
  if constexpr (is_half_v<T>) {
    for (int64_t i = b; i < e; ++i) y[i] = store_value<T>(op(load_value(y[i])));
  } else {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) y[i] = op(y[i]);
  }
}

// y[i] = store(op(load(x[i]))) for every element, in parallel when large.
// x and y are the same array or do not overlap.
template <typename T, typename U, typename Op>
void unary_map(const T* x, U* y, int64_t n, int num_threads, const Op& op) {
  if constexpr (std::is_same_v<T, U>) {
    if (static_cast<const void*>(x) == static_cast<const void*>(y)) {
      parallel_ranges(n, num_threads, [&](int64_t b, int64_t e) { unary_map_range_in_place(y, b, e, op); });
      return;
    }
  }
  parallel_ranges(n, num_threads, [&](int64_t b, int64_t e) { unary_map_range(x, y, b, e, op); });
}

// Input `i` of the node, or invalid_argument naming the node when it is missing.
inline Result<const Tensor*> required_input(const KernelContext& ctx, size_t i) {
  const Tensor* t = ctx.input(i);
  if (!t) return invalid_argument(ctx.node().describe(), ": required input ", i, " is missing");
  return t;
}

inline Status unsupported_dtype(const KernelContext& ctx, DataType t) {
  return unimplemented(ctx.node().describe(), ": element type ", dtype_name(t), " is not supported");
}

// One input, one output of the same shape and type, element by element.
template <typename Op>
class PointwiseKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    if constexpr (requires(Op o) { o.init(info); }) return op_.init(info);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
    return dispatch_all(
        x->dtype(),
        [&](auto tag) -> Status {
          using T = decltype(tag);
          if constexpr (type_in_set<T>(Op::kTypes)) {
            // Element i is read before it is written: an input that dies here can hold Y.
            Tensor& y = ctx.allocate_output_over_input(0, 0, x->dtype(), x->shape());
            unary_map(x->data<T>(), y.data<T>(), x->numel(), ctx.num_threads(), op_);
            return ok_status();
          } else {
            return unsupported_dtype(ctx, x->dtype());
          }
        },
        [&]() -> Status { return unsupported_dtype(ctx, x->dtype()); });
  }

 private:
  Op op_;
};

// Registration helpers implemented in the elementwise_*.cc files.
void register_elementwise_unary(KernelRegistry& r);
void register_elementwise_binary(KernelRegistry& r);
void register_elementwise_variadic(KernelRegistry& r);
void register_activation_softmax(KernelRegistry& r);
void register_activation_misc(KernelRegistry& r);

}  // namespace hearth
