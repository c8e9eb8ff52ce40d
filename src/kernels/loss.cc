// Kernel family: loss. NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss
// (reduction none / sum / mean, per-class weights, ignore_index, N-D inputs,
// SCE's optional log_prob output). Inputs are viewed as [N, C, D] with D the
// product of the spatial dims; all arithmetic is in double, results are cast
// back to the input dtype.
#include <cmath>
#include <limits>
#include <string>

#include "kernels/kernel.h"
#include "kernels/register_all.h"

namespace hearth {
namespace {

struct LossAttrs {
  std::string reduction = "mean";
  bool has_ignore = false;
  int64_t ignore_index = 0;
};

Result<LossAttrs> read_loss_attrs(const Node& node) {
  LossAttrs a;
  a.reduction = node.attr_string("reduction", "mean");
  if (a.reduction != "none" && a.reduction != "sum" && a.reduction != "mean") {
    return invalid_argument("reduction must be none, sum or mean, got '", a.reduction, "'");
  }
  a.has_ignore = node.has_attr("ignore_index");
  a.ignore_index = node.attr_int("ignore_index", 0);
  return a;
}

// Checked views of the inputs shared by both losses.
struct LossInputs {
  int64_t n = 0, c = 0, d = 1;
  Shape target_shape;
  std::vector<int64_t> target;
  std::vector<double> weight;  // empty when absent
};

Result<LossInputs> check_loss_inputs(const Node& node, const Tensor* x, const Tensor* target, const Tensor* weight) {
  if (!x || !target) return invalid_argument(node.describe(), ": needs the scores/input and target inputs");
  if (x->rank() < 2) {
    return invalid_argument(node.describe(), ": input must be [N, C, d1, ...], got ", shape_str(x->shape()));
  }
  if (!dtype_is_float(x->dtype())) {
    return unimplemented(node.describe(), ": dtype ", dtype_name(x->dtype()), " is not supported");
  }
  LossInputs in;
  in.n = x->dim(0);
  in.c = x->dim(1);
  for (size_t i = 2; i < x->rank(); ++i) in.d *= x->dim(i);
  Shape expect = {in.n};
  for (size_t i = 2; i < x->rank(); ++i) expect.push_back(x->dim(i));
  if (target->shape() != expect) {
    return invalid_argument(node.describe(), ": target shape ", shape_str(target->shape()), " does not match ",
                            shape_str(expect), " from input ", shape_str(x->shape()));
  }
  if (target->dtype() != DataType::kInt32 && target->dtype() != DataType::kInt64) {
    return invalid_argument(node.describe(), ": target must be int32 or int64, got ", dtype_name(target->dtype()));
  }
  in.target_shape = expect;
  HEARTH_ASSIGN_OR_RETURN(in.target, tensor_to_int64s(*target));
  if (weight) {
    if (weight->shape() != Shape{in.c}) {
      return invalid_argument(node.describe(), ": weight shape ", shape_str(weight->shape()), " must be [", in.c, "]");
    }
    HEARTH_ASSIGN_OR_RETURN(in.weight, tensor_to_doubles(*weight));
  }
  return in;
}

// Computes the loss from log-probabilities `logp` ([N, C, D], double) into a
// double tensor: shape target_shape for "none", a scalar otherwise.
Result<Tensor> nll_from_logp(const Node& node, const double* logp, const LossInputs& in, const LossAttrs& a,
                             Allocator* alloc) {
  const int64_t count = in.n * in.d;
  std::vector<double> loss(count), w(count);
  for (int64_t nd = 0; nd < count; ++nd) {
    const int64_t t = in.target[nd];
    if (a.has_ignore && t == a.ignore_index) {
      loss[nd] = 0.0;
      w[nd] = 0.0;
      continue;
    }
    if (t < 0 || t >= in.c) {
      return invalid_argument(node.describe(), ": target value ", t, " at position ", nd,
                              " is out of range for ", in.c, " classes");
    }
    const int64_t n = nd / in.d, d = nd % in.d;
    w[nd] = in.weight.empty() ? 1.0 : in.weight[t];
    loss[nd] = -logp[(n * in.c + t) * in.d + d] * w[nd];
  }
  if (a.reduction == "none") {
    Tensor out(DataType::kDouble, in.target_shape, alloc);
    std::copy(loss.begin(), loss.end(), out.data<double>());
    return out;
  }
  double sum = 0.0, wsum = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    sum += loss[i];
    wsum += w[i];
  }
  // mean divides by the total weight of the non-ignored elements (their count without weights).
  return Tensor::scalar<double>(a.reduction == "sum" ? sum : sum / wsum);
}

Status set_cast_output(KernelContext& ctx, size_t i, const Tensor& t, DataType dtype) {
  HEARTH_ASSIGN_OR_RETURN(Tensor c, cast_tensor(t, dtype, ctx.allocator()));
  ctx.set_output(i, std::move(c));
  return ok_status();
}

class NllLossKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    HEARTH_ASSIGN_OR_RETURN(attrs_, read_loss_attrs(info.node));
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    HEARTH_ASSIGN_OR_RETURN(LossInputs in, check_loss_inputs(node, ctx.input(0), ctx.input(1), ctx.input(2)));
    HEARTH_ASSIGN_OR_RETURN(Tensor x, cast_tensor(*ctx.input(0), DataType::kDouble, ctx.allocator()));
    HEARTH_ASSIGN_OR_RETURN(Tensor loss, nll_from_logp(node, x.data<double>(), in, attrs_, ctx.allocator()));
    return set_cast_output(ctx, 0, loss, ctx.input(0)->dtype());
  }

 private:
  LossAttrs attrs_;
};

// log_softmax over axis 1 of [N, C, D].
void log_softmax_axis1(const double* x, double* y, int64_t n, int64_t c, int64_t d) {
  for (int64_t i = 0; i < n; ++i) {
    const double* xi = x + i * c * d;
    double* yi = y + i * c * d;
    for (int64_t k = 0; k < d; ++k) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < c; ++j) mx = std::max(mx, xi[j * d + k]);
      double s = 0.0;
      for (int64_t j = 0; j < c; ++j) s += std::exp(xi[j * d + k] - mx);
      const double lse = mx + std::log(s);
      for (int64_t j = 0; j < c; ++j) yi[j * d + k] = xi[j * d + k] - lse;
    }
  }
}

class SoftmaxCrossEntropyKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    HEARTH_ASSIGN_OR_RETURN(attrs_, read_loss_attrs(info.node));
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    HEARTH_ASSIGN_OR_RETURN(LossInputs in, check_loss_inputs(node, ctx.input(0), ctx.input(1), ctx.input(2)));
    const DataType dtype = ctx.input(0)->dtype();
    HEARTH_ASSIGN_OR_RETURN(Tensor x, cast_tensor(*ctx.input(0), DataType::kDouble, ctx.allocator()));
    Tensor logp(DataType::kDouble, x.shape(), ctx.allocator());
    log_softmax_axis1(x.data<double>(), logp.data<double>(), in.n, in.c, in.d);
    HEARTH_ASSIGN_OR_RETURN(Tensor loss, nll_from_logp(node, logp.data<double>(), in, attrs_, ctx.allocator()));
    HEARTH_RETURN_IF_ERROR(set_cast_output(ctx, 0, loss, dtype));
    if (ctx.num_outputs() > 1) HEARTH_RETURN_IF_ERROR(set_cast_output(ctx, 1, logp, dtype));
    return ok_status();
  }

 private:
  LossAttrs attrs_;
};

}  // namespace

void register_loss_kernels(KernelRegistry& r) {
  r.add({"NegativeLogLikelihoodLoss", "", 12, kMaxOpset, float_types(), kernel_factory<NllLossKernel>()});
  r.add({"SoftmaxCrossEntropyLoss", "", 12, kMaxOpset, float_types(), kernel_factory<SoftmaxCrossEntropyKernel>()});
}

}  // namespace hearth
