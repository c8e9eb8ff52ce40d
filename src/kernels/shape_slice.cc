// Kernel family: shape, Slice. Opsets 1-9 take starts/ends/axes as
// attributes; from opset 10 they are inputs, with optional axes and steps.
// Starts/ends are clamped as numpy does, steps may be negative.
#include <algorithm>
#include <cstdint>

#include "kernels/kernel.h"
#include "kernels/shape_util.h"

namespace hearth {
namespace {

struct SliceArgs {
  std::vector<int64_t> starts, ends, axes, steps;
};

// Clamps one axis' start/end and returns the element count it selects.
int64_t slice_axis(int64_t dim, int64_t step, int64_t& start, int64_t end) {
  if (dim == 0) return 0;
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    return end > start ? (end - start - 1) / step + 1 : 0;
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  return start > end ? (start - end - 1) / (-step) + 1 : 0;
}

// Builds the strided copy that realises the slice of `shape`.
Result<StridedCopy> slice_plan(const Shape& shape, const SliceArgs& a) {
  const size_t n = a.starts.size();
  if (a.ends.size() != n || a.axes.size() != n || a.steps.size() != n) {
    return invalid_argument("Slice: starts, ends, axes and steps must have the same length (", a.starts.size(), ", ",
                            a.ends.size(), ", ", a.axes.size(), ", ", a.steps.size(), ")");
  }
  const int64_t rank = static_cast<int64_t>(shape.size());
  const std::vector<int64_t> in_strides = shape_strides(shape);
  StridedCopy plan;
  plan.shape = shape;
  plan.src_strides = in_strides;
  std::vector<bool> seen(shape.size(), false);
  for (size_t i = 0; i < n; ++i) {
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis_for(a.axes[i], rank, "Slice"));
    const size_t ax = static_cast<size_t>(axis);
    if (seen[ax]) return invalid_argument("Slice: axis ", a.axes[i], " is repeated");
    seen[ax] = true;
    if (a.steps[i] == 0) return invalid_argument("Slice: step for axis ", a.axes[i], " is 0");
    const int64_t step = std::max<int64_t>(a.steps[i], -INT64_MAX);  // keeps -step representable
    int64_t start = a.starts[i];
    const int64_t count = slice_axis(shape[ax], step, start, a.ends[i]);
    plan.shape[ax] = count;
    plan.src_strides[ax] = count > 1 ? in_strides[ax] * step : 0;
    if (count > 0) plan.src_offset += start * in_strides[ax];
  }
  return plan;
}

class SliceKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    from_attrs_ = info.opset < 10;
    if (from_attrs_) {
      attr_.starts = info.node.attr_ints("starts");
      attr_.ends = info.node.attr_ints("ends");
      attr_.axes = info.node.attr_ints("axes");
    }
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "Slice", "data"));
    SliceArgs a = attr_;
    if (!from_attrs_) HEARTH_RETURN_IF_ERROR(read_inputs(ctx, a));
    if (a.axes.empty()) {
      for (size_t i = 0; i < a.starts.size(); ++i) a.axes.push_back(static_cast<int64_t>(i));
    }
    if (a.steps.empty()) a.steps.assign(a.starts.size(), 1);
    HEARTH_ASSIGN_OR_RETURN(StridedCopy plan, slice_plan(x->shape(), a));
    Tensor& y = ctx.allocate_output(0, x->dtype(), plan.shape);
    return strided_copy(plan, x->raw_data(), y.raw_data(), dtype_size(x->dtype()), ctx.num_threads());
  }

 private:
  static Status read_inputs(const KernelContext& ctx, SliceArgs& a) {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* starts, required_input(ctx, 1, "starts"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* ends, required_input(ctx, 2, "ends"));
    HEARTH_ASSIGN_OR_RETURN(a.starts, read_int64s(*starts, "Slice: starts"));
    HEARTH_ASSIGN_OR_RETURN(a.ends, read_int64s(*ends, "Slice: ends"));
    if (const Tensor* axes = ctx.input(3)) {
      HEARTH_ASSIGN_OR_RETURN(a.axes, read_int64s(*axes, "Slice: axes"));
    }
    if (const Tensor* steps = ctx.input(4)) {
      HEARTH_ASSIGN_OR_RETURN(a.steps, read_int64s(*steps, "Slice: steps"));
    }
    return ok_status();
  }

  bool from_attrs_ = false;
  SliceArgs attr_;
};

}  // namespace

void register_shape_slice_kernels(KernelRegistry& r) {
  r.add({"Slice", "", 1, kMaxOpset, all_types(), kernel_factory<SliceKernel>()});
}

}  // namespace hearth
