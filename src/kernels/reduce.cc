// Kernel family: reduce. The Reduce* ops (Sum, Mean, Max, Min, Prod, L1, L2,
// LogSum, LogSumExp, SumSquare) over any set of axes.
//
// The input is viewed as a collapsed shape: size-1 dims dropped and adjacent
// dims of the same kind (kept / reduced) merged, so [N,T,768] reduced over the
// last axis is [K=N*T, R=768] and a middle-axis reduction is [K1, R, K2]. The
// innermost group is a contiguous row: a reduced row folds into one accumulator
// (several lanes so the compiler vectorizes), a kept row updates a contiguous run
// of accumulators. Outer groups are walked with an odometer. float16/bfloat16
// are computed in float32.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/kernel.h"
#include "kernels/reduce_internal.h"
#include "kernels/register_all.h"
#include "kernels/wrapping.h"

namespace hearth {
namespace {

enum class ReduceOp { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

constexpr int64_t kParallelThreshold = 1 << 16;

// Collapsed view of one reduction (see the file comment).
struct ReducePlan {
  std::vector<int64_t> dims;  // collapsed input dims, all >= 2 except a lone [1]
  std::vector<bool> reduced;  // per collapsed dim
  Shape out_shape;
  int64_t out_numel = 1;
  int64_t reduce_count = 1;  // elements folded into each output
};

ReducePlan make_plan(const Shape& in, const std::vector<bool>& is_red, bool keepdims) {
  ReducePlan p;
  for (size_t d = 0; d < in.size(); ++d) {
    if (is_red[d]) {
      p.reduce_count *= in[d];
      if (keepdims) p.out_shape.push_back(1);
    } else {
      p.out_numel *= in[d];
      p.out_shape.push_back(in[d]);
    }
    if (in[d] == 1) continue;
    if (!p.dims.empty() && p.reduced.back() == is_red[d]) {
      p.dims.back() *= in[d];
    } else {
      p.dims.push_back(in[d]);
      p.reduced.push_back(is_red[d]);
    }
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    p.reduced.push_back(false);
  }
  return p;
}

// Folds a contiguous row of n elements into one value. Eight independent lanes
// under `omp simd` let the compiler use vector instructions at -O2.
template <typename Acc, typename T, typename Map, typename Comb>
inline Acc fold_row(const T* x, int64_t n, int64_t o, Acc init, const Map& map, const Comb& comb) {
  constexpr int kLanes = 8;
  Acc lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = init;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) lanes[l] = comb(lanes[l], map(x[i + l], o));
  }
  Acc r = init;
  for (int l = 0; l < kLanes; ++l) r = comb(r, lanes[l]);
  for (; i < n; ++i) r = comb(r, map(x[i], o));
  return r;
}

// Accumulates every input element into acc[out index] (acc pre-filled with init).
// map(x, o) transforms element x feeding output o; comb combines two values.
template <typename T, typename Acc, typename Map, typename Comb>
void run_plan(const ReducePlan& p, const T* x, Acc* acc, Acc init, const Map& map, const Comb& comb, int threads) {
  const size_t g = p.dims.size();
  std::vector<int64_t> ostride(g, 0);
  for (int64_t i = static_cast<int64_t>(g) - 1, s = 1; i >= 0; --i) {
    if (!p.reduced[i]) {
      ostride[i] = s;
      s *= p.dims[i];
    }
  }
  const int64_t L = p.dims[g - 1];
  const bool last_red = p.reduced[g - 1];
  const int64_t numel = dims_product(p.dims, 0, g);
  const int64_t rows = numel / L;

  auto do_rows = [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> idx(g, 0);
    int64_t rem = r0, o = 0;
    for (int64_t i = static_cast<int64_t>(g) - 2; i >= 0; --i) {
      idx[i] = rem % p.dims[i];
      rem /= p.dims[i];
      o += idx[i] * ostride[i];
    }
    for (int64_t r = r0; r < r1; ++r) {
      const T* row = x + r * L;
      if (last_red) {
        acc[o] = comb(acc[o], fold_row(row, L, o, init, map, comb));
      } else {
        Acc* a = acc + o;
#pragma omp simd
        for (int64_t j = 0; j < L; ++j) a[j] = comb(a[j], map(row[j], o + j));
      }
      for (int64_t i = static_cast<int64_t>(g) - 2; i >= 0; --i) {
        o += ostride[i];
        if (++idx[i] < p.dims[i]) break;
        o -= ostride[i] * p.dims[i];
        idx[i] = 0;
      }
    }
  };

  const bool big = numel >= kParallelThreshold && threads > 1;
  if (big && g >= 2 && !p.reduced[0]) {
    // Blocks of the outermost kept group write disjoint outputs.
    // One contiguous range of blocks per thread keeps odometer setup rare.
    const int64_t per = rows / p.dims[0], d0 = p.dims[0];
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; ++t) do_rows(d0 * t / threads * per, d0 * (t + 1) / threads * per);
  } else if (big && g == 2 && p.reduced[0]) {
    // [R, K]: split the kept columns.
    const int64_t R = p.dims[0], K = p.dims[1];
    const int64_t chunk = std::max<int64_t>(64, (K + threads - 1) / threads);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t j0 = 0; j0 < K; j0 += chunk) {
      const int64_t j1 = std::min(K, j0 + chunk);
      for (int64_t r = 0; r < R; ++r) {
        const T* row = x + r * K;
#pragma omp simd
        for (int64_t j = j0; j < j1; ++j) acc[j] = comb(acc[j], map(row[j], j));
      }
    }
  } else if (big && g == 1 && last_red) {
    // Reduce everything: per-thread partial folds, combined in order.
    const int64_t chunk = (numel + threads - 1) / threads;
    std::vector<Acc> part(threads, init);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; ++t) {
      const int64_t b = std::min(numel, t * chunk), e = std::min(numel, b + chunk);
      part[t] = fold_row(x + b, e - b, 0, init, map, comb);
    }
    for (int t = 0; t < threads; ++t) acc[0] = comb(acc[0], part[t]);
  } else {
    do_rows(0, rows);
  }
}

template <ReduceOp Op, typename T>
using AccType = std::conditional_t<
    std::is_floating_point_v<T>, T,
    std::conditional_t<Op == ReduceOp::kL2 || Op == ReduceOp::kLogSum || Op == ReduceOp::kLogSumExp, double,
                       std::conditional_t<std::is_same_v<T, uint64_t>, uint64_t, int64_t>>>;

template <typename Acc, typename T>
Acc lowest_value() {
  if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<Acc>::infinity();
  else return static_cast<Acc>(std::numeric_limits<T>::lowest());
}
template <typename Acc, typename T>
Acc highest_value() {
  if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<Acc>::infinity();
  else return static_cast<Acc>(std::numeric_limits<T>::max());
}

// Reduces `x` (already float32 for half types) into `out` according to `p`.
template <ReduceOp Op, typename T>
void reduce_typed(const ReducePlan& p, const T* x, T* out, int threads) {
  using Acc = AccType<Op, T>;
  const auto add = [](Acc a, Acc b) { return wrap_add(a, b); };
  const auto ident = [](T v, int64_t) { return static_cast<Acc>(v); };
  std::vector<Acc> acc(p.out_numel);
  std::vector<Acc> shift;  // LogSumExp: per-output max, subtracted before exp
  const bool empty = p.reduce_count == 0;

  if constexpr (Op == ReduceOp::kMax || Op == ReduceOp::kMin) {
    const Acc init = Op == ReduceOp::kMax ? lowest_value<Acc, T>() : highest_value<Acc, T>();
    std::fill(acc.begin(), acc.end(), init);
    const auto pick = [](Acc a, Acc b) {
      if constexpr (Op == ReduceOp::kMax) return a < b ? b : a;
      else return b < a ? b : a;
    };
    if (!empty) run_plan(p, x, acc.data(), init, ident, pick, threads);
  } else if constexpr (Op == ReduceOp::kProd) {
    std::fill(acc.begin(), acc.end(), Acc(1));
    if (!empty) run_plan(p, x, acc.data(), Acc(1), ident, [](Acc a, Acc b) { return wrap_mul(a, b); }, threads);
  } else if constexpr (Op == ReduceOp::kLogSumExp) {
    shift.assign(p.out_numel, lowest_value<Acc, T>());
    const auto mx = [](Acc a, Acc b) { return a < b ? b : a; };
    if (!empty) run_plan(p, x, shift.data(), lowest_value<Acc, T>(), ident, mx, threads);
    for (auto& s : shift)
      if (!std::isfinite(s)) s = 0;
    std::fill(acc.begin(), acc.end(), Acc(0));
    const Acc* sh = shift.data();
    const auto ex = [sh](T v, int64_t o) { return std::exp(static_cast<Acc>(v) - sh[o]); };
    if (!empty) run_plan(p, x, acc.data(), Acc(0), ex, add, threads);
  } else {
    std::fill(acc.begin(), acc.end(), Acc(0));
    if (!empty) {
      if constexpr (Op == ReduceOp::kL1) {
        const auto abs_map = [](T v, int64_t) { return wrap_abs(static_cast<Acc>(v)); };
        run_plan(p, x, acc.data(), Acc(0), abs_map, add, threads);
      } else if constexpr (Op == ReduceOp::kL2 || Op == ReduceOp::kSumSquare) {
        const auto sq = [](T v, int64_t) { return wrap_mul(static_cast<Acc>(v), static_cast<Acc>(v)); };
        run_plan(p, x, acc.data(), Acc(0), sq, add, threads);
      } else {
        run_plan(p, x, acc.data(), Acc(0), ident, add, threads);
      }
    }
  }

  for (int64_t o = 0; o < p.out_numel; ++o) {
    Acc a = acc[o];
    if constexpr (Op == ReduceOp::kMean) {
      if constexpr (std::is_floating_point_v<Acc>) a = a / static_cast<Acc>(p.reduce_count);
      else a = p.reduce_count == 0 ? Acc(0) : a / static_cast<Acc>(p.reduce_count);
    } else if constexpr (Op == ReduceOp::kL2) {
      a = std::sqrt(a);
    } else if constexpr (Op == ReduceOp::kLogSum) {
      a = std::log(a);
    } else if constexpr (Op == ReduceOp::kLogSumExp) {
      a = std::log(a) + shift[o];
    }
    out[o] = saturating_cast<T>(static_cast<double>(a));  // log(0) of an integer reduction is -inf
  }
}

class ReduceKernel : public Kernel {
 public:
  explicit ReduceKernel(ReduceOp op) : op_(op) {}

  Status init(const KernelInfo& info) override {
    const Node& n = info.node;
    keepdims_ = n.attr_int("keepdims", 1) != 0;
    noop_with_empty_axes_ = n.attr_int("noop_with_empty_axes", 0) != 0;
    axes_from_input_ = (op_ == ReduceOp::kSum && info.opset >= 13) || info.opset >= 18;
    if (!axes_from_input_) axes_ = n.attr_ints("axes");
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    if (!x) return invalid_argument(node.describe(), ": missing input 'data'");
    std::vector<int64_t> axes = axes_;
    if (axes_from_input_ && ctx.input(1)) {
      auto a = tensor_to_int64s(*ctx.input(1));
      if (!a.ok()) return a.status().with_context(node.describe() + ": input 'axes'");
      axes = std::move(a).value();
    }
    if (axes.empty() && noop_with_empty_axes_) {
      ctx.set_output(0, *x);
      return ok_status();
    }
    const int64_t rank = static_cast<int64_t>(x->rank());
    std::vector<bool> is_red(rank, axes.empty());
    for (int64_t a : axes) {
      HEARTH_ASSIGN_OR_RETURN(int64_t ax, normalize_axis(a, rank, node));
      if (is_red[ax]) return invalid_argument(node.describe(), ": axis ", a, " is listed twice in axes");
      is_red[ax] = true;
    }
    ReducePlan plan = make_plan(x->shape(), is_red, keepdims_);
    const DataType out_type = x->dtype();
    Tensor src = *x;
    if (is_half_type(out_type)) {
      HEARTH_ASSIGN_OR_RETURN(src, cast_tensor(*x, DataType::kFloat, ctx.allocator()));
    }
    Tensor out(src.dtype(), plan.out_shape, ctx.allocator());
    if (plan.out_numel > 0) HEARTH_RETURN_IF_ERROR(dispatch(node, plan, src, out, ctx.num_threads()));
    return set_output_as(ctx, 0, out, out_type);
  }

 private:
  Status dispatch(const Node& node, const ReducePlan& p, const Tensor& x, Tensor& out, int threads) const {
    return dispatch_arith(
        x.dtype(),
        [&](auto tag) -> Status {
          using T = decltype(tag);
          const T* in = x.data<T>();
          T* o = out.data<T>();
          switch (op_) {
            case ReduceOp::kSum: reduce_typed<ReduceOp::kSum>(p, in, o, threads); break;
            case ReduceOp::kMean: reduce_typed<ReduceOp::kMean>(p, in, o, threads); break;
            case ReduceOp::kMax: reduce_typed<ReduceOp::kMax>(p, in, o, threads); break;
            case ReduceOp::kMin: reduce_typed<ReduceOp::kMin>(p, in, o, threads); break;
            case ReduceOp::kProd: reduce_typed<ReduceOp::kProd>(p, in, o, threads); break;
            case ReduceOp::kL1: reduce_typed<ReduceOp::kL1>(p, in, o, threads); break;
            case ReduceOp::kL2: reduce_typed<ReduceOp::kL2>(p, in, o, threads); break;
            case ReduceOp::kLogSum: reduce_typed<ReduceOp::kLogSum>(p, in, o, threads); break;
            case ReduceOp::kLogSumExp: reduce_typed<ReduceOp::kLogSumExp>(p, in, o, threads); break;
            case ReduceOp::kSumSquare: reduce_typed<ReduceOp::kSumSquare>(p, in, o, threads); break;
          }
          return ok_status();
        },
        [&]() -> Status {
          return unimplemented(node.describe(), ": dtype ", dtype_name(x.dtype()), " is not supported");
        });
  }

  ReduceOp op_;
  bool keepdims_ = true;
  bool noop_with_empty_axes_ = false;
  bool axes_from_input_ = false;
  std::vector<int64_t> axes_;
};

template <ReduceOp Op>
class ReduceOpKernel : public ReduceKernel {
 public:
  ReduceOpKernel() : ReduceKernel(Op) {}
};

std::vector<DataType> reduce_types() {
  return {DataType::kFloat, DataType::kDouble, DataType::kFloat16, DataType::kBFloat16, DataType::kInt32,
          DataType::kInt64, DataType::kUInt32, DataType::kUInt64, DataType::kInt8, DataType::kUInt8};
}

}  // namespace

void register_reduce_kernels(KernelRegistry& r) {
  r.add({"ReduceSum", "", 1, kMaxOpset, reduce_types(), kernel_factory<ReduceOpKernel<ReduceOp::kSum>>()});
  r.add({"ReduceMean", "", 1, kMaxOpset, reduce_types(), kernel_factory<ReduceOpKernel<ReduceOp::kMean>>()});
  r.add({"ReduceMax", "", 1, kMaxOpset, reduce_types(), kernel_factory<ReduceOpKernel<ReduceOp::kMax>>()});
  r.add({"ReduceMin", "", 1, kMaxOpset, reduce_types(), kernel_factory<ReduceOpKernel<ReduceOp::kMin>>()});
  r.add({"ReduceProd", "", 1, kMaxOpset, reduce_types(), kernel_factory<ReduceOpKernel<ReduceOp::kProd>>()});
  r.add({"ReduceL1", "", 1, kMaxOpset, reduce_types(), kernel_factory<ReduceOpKernel<ReduceOp::kL1>>()});
  r.add({"ReduceL2", "", 1, kMaxOpset, reduce_types(), kernel_factory<ReduceOpKernel<ReduceOp::kL2>>()});
  r.add({"ReduceLogSum", "", 1, kMaxOpset, reduce_types(), kernel_factory<ReduceOpKernel<ReduceOp::kLogSum>>()});
  r.add({"ReduceLogSumExp", "", 1, kMaxOpset, reduce_types(),
         kernel_factory<ReduceOpKernel<ReduceOp::kLogSumExp>>()});
  r.add({"ReduceSumSquare", "", 1, kMaxOpset, reduce_types(),
         kernel_factory<ReduceOpKernel<ReduceOp::kSumSquare>>()});
  register_reduce_index_kernels(r);
  register_einsum_kernels(r);
}

}  // namespace hearth
