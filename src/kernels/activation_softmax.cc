// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2-D
// at `axis` (default 1) and the op runs over the flattened trailing block;
// from opset 13 it runs along the single dimension `axis` (default -1).

// SIMD: the build's -ftrapping-math keeps GCC from if-converting the selects
// in these elementwise loops; no kernel here reads floating-point exception flags.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/dnnl_common.h"
#include "kernels/elementwise_common.h"
#include "kernels/elementwise_fastmath.h"

namespace hearth {
namespace {

enum class SoftKind { kSoftmax, kLogSoftmax, kHardmax };

// Softmax / LogSoftmax of one contiguous row, in place (SIMD reductions).
template <typename C>
void soft_row(SoftKind kind, C* v, int64_t D) {
  C mx = -std::numeric_limits<C>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t d = 0; d < D; ++d) mx = v[d] > mx ? v[d] : mx;
  C sum = 0;
  if (kind == SoftKind::kSoftmax) {
#pragma omp simd reduction(+ : sum)
    for (int64_t d = 0; d < D; ++d) {
      const C e = fast_exp(v[d] - mx);
      v[d] = e;
      sum += e;
    }
    const C inv = C(1) / sum;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) v[d] *= inv;
  } else {
#pragma omp simd reduction(+ : sum)
    for (int64_t d = 0; d < D; ++d) sum += fast_exp(v[d] - mx);
    const C lse = mx + std::log(sum);
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) v[d] -= lse;
  }
}

// Applies the op in place to block v[D][inner] along D, independently for each
// inner position. m and s are scratch of `inner` elements.
template <typename C>
void soft_block(SoftKind kind, C* v, int64_t D, int64_t inner, C* m, C* s) {
  for (int64_t j = 0; j < inner; ++j) {
    m[j] = -std::numeric_limits<C>::infinity();
    s[j] = 0;  // Hardmax: index of the first maximum
  }
  if (kind == SoftKind::kHardmax) {
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < inner; ++j)
        if (v[d * inner + j] > m[j]) {
          m[j] = v[d * inner + j];
          s[j] = static_cast<C>(d);
        }
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < inner; ++j) v[d * inner + j] = s[j] == static_cast<C>(d) ? C(1) : C(0);
    return;
  }
  if (inner == 1) return soft_row(kind, v, D);
  for (int64_t d = 0; d < D; ++d)
#pragma omp simd
    for (int64_t j = 0; j < inner; ++j) m[j] = std::max(m[j], v[d * inner + j]);
  if (kind == SoftKind::kSoftmax) {
    for (int64_t d = 0; d < D; ++d)
#pragma omp simd
      for (int64_t j = 0; j < inner; ++j) {
        const C e = fast_exp(v[d * inner + j] - m[j]);
        v[d * inner + j] = e;
        s[j] += e;
      }
    for (int64_t j = 0; j < inner; ++j) s[j] = C(1) / s[j];
    for (int64_t d = 0; d < D; ++d)
#pragma omp simd
      for (int64_t j = 0; j < inner; ++j) v[d * inner + j] *= s[j];
  } else {
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < inner; ++j) s[j] += fast_exp(v[d * inner + j] - m[j]);
    for (int64_t j = 0; j < inner; ++j) s[j] = m[j] + std::log(s[j]);
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < inner; ++j) v[d * inner + j] -= s[j];
  }
}

// float32 Softmax / LogSoftmax over contiguous rows on oneDNN's softmax_v2
// (jit:avx2 here; about 8x the row loop above on BERT's [32,128,128] scores).
class DnnlSoftmax {
 public:
  // Runs rows x [outer, D] -> y; false when oneDNN declines (caller falls back).
  bool run(bool log, const float* x, float* y, int64_t outer, int64_t D) {
    try {
      if (!ready_ || outer != outer_ || D != d_) {
        ready_ = false;
        const dnnl::memory::desc md({outer, D}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
        const auto alg = log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate;
        dnnl::softmax_v2_forward::primitive_desc pd(
            dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference, alg, md, md, 1), dnnl_cpu_engine());
        prim_ = dnnl::softmax_v2_forward(pd);
        src_ = dnnl::memory(md, dnnl_cpu_engine(), nullptr);
        dst_ = dnnl::memory(md, dnnl_cpu_engine(), nullptr);
        outer_ = outer, d_ = D, ready_ = true;
      }
      thread_local dnnl::stream stream(dnnl_cpu_engine());
      src_.set_data_handle(const_cast<float*>(x));
      dst_.set_data_handle(y);
      prim_.execute(stream, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}});
      stream.wait();
      return true;
    } catch (const dnnl::error&) {
      ready_ = false;
      return false;
    }
  }

 private:
  dnnl::softmax_v2_forward prim_;
  dnnl::memory src_, dst_;
  int64_t outer_ = -1, d_ = -1;
  bool ready_ = false;
};

template <SoftKind kKind>
class SoftKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    legacy_ = info.opset < 13;
    axis_ = info.node.attr_int("axis", legacy_ ? 1 : -1);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
    const Shape& shape = x->shape();
    const int64_t rank = static_cast<int64_t>(shape.size());
    if (rank == 0) return invalid_argument(ctx.node().describe(), ": input must have rank >= 1");
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_, rank, ctx.node()));
    int64_t outer = 1, D = 1, inner = 1;
    for (int64_t i = 0; i < rank; ++i) {
      if (i < axis) outer *= shape[i];
      else if (i == axis || legacy_) D *= shape[i];
      else inner *= shape[i];
    }
    return dispatch_all(
        x->dtype(),
        [&](auto tag) -> Status {
          using T = decltype(tag);
          if constexpr (type_in_set<T>(TypeSet::kFloat)) {
            Tensor& y = ctx.allocate_output(0, x->dtype(), shape);
            if constexpr (std::is_same_v<T, float> && kKind != SoftKind::kHardmax) {
              if (inner == 1 && outer > 0 && D > 0 &&
                  dnnl_.run(kKind == SoftKind::kLogSoftmax, x->data<float>(), y.data<float>(), outer, D))
                return ok_status();
            }
            run<T>(x->data<T>(), y.data<T>(), outer, D, inner, ctx.num_threads());
            return ok_status();
          } else {
            return unsupported_dtype(ctx, x->dtype());
          }
        },
        [&]() -> Status { return unsupported_dtype(ctx, x->dtype()); });
  }

 private:
  template <typename T>
  static void run(const T* x, T* y, int64_t outer, int64_t D, int64_t inner, int nt) {
    using C = compute_t<T>;
    const int64_t block = D * inner;
    if (block == 0) return;
    parallel_rows(outer, block, nt, [&](int64_t b, int64_t e) {
      std::vector<C> scratch(static_cast<size_t>(2 * inner + (std::is_same_v<T, C> ? 0 : block)));
      C* m = scratch.data();
      C* s = m + inner;
      for (int64_t o = b; o < e; ++o) {
        const T* xo = x + o * block;
        T* yo = y + o * block;
        if constexpr (std::is_same_v<T, C>) {
          std::copy(xo, xo + block, yo);
          soft_block<C>(kKind, yo, D, inner, m, s);
        } else {
          C* v = s + inner;
          for (int64_t i = 0; i < block; ++i) v[i] = load_value(xo[i]);
          soft_block<C>(kKind, v, D, inner, m, s);
          for (int64_t i = 0; i < block; ++i) yo[i] = store_value<T>(v[i]);
        }
      }
    });
  }

  bool legacy_ = false;
  int64_t axis_ = -1;
  DnnlSoftmax dnnl_;
};

}  // namespace

void register_activation_softmax(KernelRegistry& r) {
  const auto flt = float_types();
  r.add({"Softmax", "", 1, kMaxOpset, flt, kernel_factory<SoftKernel<SoftKind::kSoftmax>>()});
  r.add({"LogSoftmax", "", 1, kMaxOpset, flt, kernel_factory<SoftKernel<SoftKind::kLogSoftmax>>()});
  r.add({"Hardmax", "", 1, kMaxOpset, flt, kernel_factory<SoftKernel<SoftKind::kHardmax>>()});
}

}  // namespace hearth
