// Kernel family: gather, reordering part. Unique (sorted or first-occurrence
// order, flattened or along an axis, with indices / inverse_indices / counts
// outputs) and ReverseSequence.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "kernels/kernel.h"
#include "kernels/shape_util.h"

namespace hearth {
namespace {

// Comparable value of an element: 16-bit floats compare as float.
template <typename T>
auto sort_key(const T& v) {
  if constexpr (std::is_same_v<T, Float16>) {
    return half_to_float(v.bits);
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return bfloat16_to_float(v.bits);
  } else {
    return v;
  }
}

// Strict weak order on keys; NaN sorts after every number and equals NaN.
template <typename K>
bool key_less(K a, K b) {
  if constexpr (std::is_floating_point_v<K>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

// Groups of equal slices: for each group the first (smallest) slice id and its count,
// and for each slice its group number.
struct UniqueGroups {
  std::vector<int64_t> first, count, inverse;
};

// Slice s of a tensor viewed as [outer, n, inner] is elements (o, s, i).
template <typename T>
UniqueGroups group_slices(const T* x, int64_t outer, int64_t n, int64_t inner, bool sorted) {
  // Three-way compare of slices a and b, lexicographic over (o, i).
  auto cmp = [&](int64_t a, int64_t b) {
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const auto va = sort_key(x[(o * n + a) * inner + i]), vb = sort_key(x[(o * n + b) * inner + i]);
        if (key_less(va, vb)) return -1;
        if (key_less(vb, va)) return 1;
      }
    }
    return 0;
  };
  std::vector<int64_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return cmp(a, b) < 0; });
  UniqueGroups g;
  std::vector<int64_t> group_of(static_cast<size_t>(n));
  for (size_t j = 0; j < ids.size(); ++j) {
    if (j == 0 || cmp(ids[j - 1], ids[j]) != 0) {
      g.first.push_back(ids[j]);
      g.count.push_back(0);
    }
    g.count.back()++;
    group_of[static_cast<size_t>(ids[j])] = static_cast<int64_t>(g.first.size()) - 1;
  }
  std::vector<int64_t> rank(g.first.size());
  std::iota(rank.begin(), rank.end(), 0);
  if (!sorted) {
    // Reorder groups by first occurrence.
    std::vector<int64_t> order(g.first.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return g.first[a] < g.first[b]; });
    UniqueGroups r;
    for (size_t k = 0; k < order.size(); ++k) {
      r.first.push_back(g.first[order[k]]);
      r.count.push_back(g.count[order[k]]);
      rank[order[k]] = static_cast<int64_t>(k);
    }
    g.first = std::move(r.first);
    g.count = std::move(r.count);
  }
  for (int64_t s : group_of) g.inverse.push_back(rank[static_cast<size_t>(s)]);
  return g;
}

class UniqueKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    sorted_ = info.node.attr_int("sorted", 1) != 0;
    has_axis_ = info.node.has_attr("axis");
    axis_ = info.node.attr_int("axis", 0);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "X"));
    Shape shape = {x->numel()};
    size_t ax = 0;
    if (has_axis_) {
      HEARTH_ASSIGN_OR_RETURN(int64_t a, normalize_axis_for(axis_, static_cast<int64_t>(x->rank()), "Unique"));
      shape = x->shape();
      ax = static_cast<size_t>(a);
    }
    int64_t outer = 1, inner = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (d < ax) outer *= shape[d];
      if (d > ax) inner *= shape[d];
    }
    const int64_t n = shape[ax];
    // The grouping and inverse_indices take n entries each: as large as an output.
    HEARTH_RETURN_IF_ERROR(ctx.check_output_shape(DataType::kInt64, {n}).with_context("Unique"));
    UniqueGroups g;
    if (outer * inner == 0 && n > 0) {  // empty slices are all equal: one group, no sort
      g.first = {0};
      g.count = {n};
      g.inverse.assign(static_cast<size_t>(n), 0);
    } else HEARTH_RETURN_IF_ERROR(dispatch_all(
        x->dtype(),
        [&](auto tag) -> Status {
          g = group_slices(x->data<decltype(tag)>(), outer, n, inner, sorted_);
          return ok_status();
        },
        [&]() -> Status { return unimplemented("Unique: dtype ", dtype_name(x->dtype()), " is not supported"); }));
    const int64_t u = static_cast<int64_t>(g.first.size());
    Shape out = shape;
    out[ax] = u;
    Tensor& y = ctx.allocate_output(0, x->dtype(), out);
    const size_t block = static_cast<size_t>(inner) * dtype_size(x->dtype());
    const auto* src = static_cast<const uint8_t*>(x->raw_data());
    auto* dst = static_cast<uint8_t*>(y.raw_data());
    for (int64_t o = 0; o < outer && block > 0; ++o) {
      for (int64_t k = 0; k < u; ++k) {
        std::memcpy(dst + (o * u + k) * block, src + (o * n + g.first[static_cast<size_t>(k)]) * block, block);
      }
    }
    const std::vector<int64_t>* extra[3] = {&g.first, &g.inverse, &g.count};
    for (size_t k = 1; k < 4 && k < ctx.num_outputs(); ++k) {
      const std::vector<int64_t>& v = *extra[k - 1];
      Tensor& t = ctx.allocate_output(k, DataType::kInt64, {static_cast<int64_t>(v.size())});
      std::copy(v.begin(), v.end(), t.data<int64_t>());
    }
    return ok_status();
  }

 private:
  bool sorted_ = true;
  bool has_axis_ = false;
  int64_t axis_ = 0;
};

class ReverseSequenceKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    batch_axis_ = info.node.attr_int("batch_axis", 1);
    time_axis_ = info.node.attr_int("time_axis", 0);
    if (!((batch_axis_ == 0 && time_axis_ == 1) || (batch_axis_ == 1 && time_axis_ == 0))) {
      return invalid_argument("ReverseSequence: batch_axis ", batch_axis_, " and time_axis ", time_axis_,
                              " must be 0 and 1 in some order");
    }
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* lt, required_input(ctx, 1, "sequence_lens"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "ReverseSequence", "input"));
    if (x->rank() < 2) return invalid_argument("ReverseSequence: input must have rank >= 2, got ", x->describe());
    const size_t ba = static_cast<size_t>(batch_axis_), ta = static_cast<size_t>(time_axis_);
    const int64_t batch = x->dim(ba), steps = x->dim(ta);
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> lens, read_int64s(*lt, "ReverseSequence: sequence_lens"));
    if (static_cast<int64_t>(lens.size()) != batch) {
      return invalid_argument("ReverseSequence: sequence_lens has ", lens.size(), " entries for batch size ", batch);
    }
    for (int64_t l : lens) {
      if (l < 0 || l > steps) {
        return invalid_argument("ReverseSequence: sequence length ", l, " is out of range [0, ", steps, "]");
      }
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), x->shape());
    const std::vector<int64_t> st = shape_strides(x->shape());
    const size_t block = static_cast<size_t>(st[1]) * dtype_size(x->dtype());
    const auto* src = static_cast<const uint8_t*>(x->raw_data());
    auto* dst = static_cast<uint8_t*>(y.raw_data());
    for (int64_t b = 0; b < batch && block > 0; ++b) {
      for (int64_t t = 0; t < steps; ++t) {
        const int64_t from = t < lens[static_cast<size_t>(b)] ? lens[static_cast<size_t>(b)] - 1 - t : t;
        const int64_t d_off = t * st[ta] + b * st[ba], s_off = from * st[ta] + b * st[ba];
        std::memcpy(dst + d_off / st[1] * block, src + s_off / st[1] * block, block);
      }
    }
    return ok_status();
  }

 private:
  int64_t batch_axis_ = 1;
  int64_t time_axis_ = 0;
};

}  // namespace

void register_gather_unique_kernels(KernelRegistry& r) {
  r.add({"Unique", "", 11, kMaxOpset, all_types(), kernel_factory<UniqueKernel>()});
  r.add({"ReverseSequence", "", 10, kMaxOpset, all_types(), kernel_factory<ReverseSequenceKernel>()});
}

}  // namespace hearth
