// Kernel family: quantized, ONNX Runtime contrib ops (domain com.microsoft)
// that quantized models exported by ORT's quantization tool contain:
// QLinearAdd and QLinearMul (uint8/int8, per-tensor scales, numpy
// broadcasting). The value is computed in float from the dequantized inputs
// and requantized with round-half-to-even and saturation.
#include <cmath>

#include "kernels/broadcast.h"
#include "kernels/kernel.h"
#include "kernels/quantized_common.h"

namespace hearth {
namespace {

// Per-tensor scale and zero point of one operand.
struct QParam {
  float scale = 1.0f;
  int32_t zp = 0;
};

Result<QParam> read_qparam(const KernelContext& ctx, size_t scale_idx, size_t zp_idx, const char* what) {
  const Node& node = ctx.node();
  if (!ctx.input(scale_idx)) return invalid_argument(node.describe(), ": ", what, " scale is required");
  HEARTH_ASSIGN_OR_RETURN(auto s, read_scales(*ctx.input(scale_idx), node, what));
  HEARTH_ASSIGN_OR_RETURN(auto z, read_zero_points(ctx.input(zp_idx), node, what));
  if (s.size() != 1 || z.size() != 1)
    return invalid_argument(node.describe(), ": ", what, " scale and zero point must be scalars");
  return QParam{s[0], z[0]};
}

// Inputs: A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp.
template <bool kMul>
class QLinearBinaryKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(3);
    if (!a || !b) return invalid_argument(node.describe(), ": inputs A and B are required");
    if (a->dtype() != b->dtype() || (a->dtype() != DataType::kUInt8 && a->dtype() != DataType::kInt8))
      return unimplemented(node.describe(), ": ", node.op_type, " of ", dtype_name(a->dtype()), " and ",
                           dtype_name(b->dtype()), " (uint8 or int8 pairs only)");
    HEARTH_ASSIGN_OR_RETURN(QParam pa, read_qparam(ctx, 1, 2, "A"));
    HEARTH_ASSIGN_OR_RETURN(QParam pb, read_qparam(ctx, 4, 5, "B"));
    HEARTH_ASSIGN_OR_RETURN(QParam pc, read_qparam(ctx, 6, 7, "C"));
    auto plan = make_broadcast_plan({a->shape(), b->shape()});
    if (!plan.ok()) return plan.status().with_context(node.describe());
    Tensor& y = ctx.allocate_output(0, a->dtype(), plan->out_shape);
    auto run = [&](auto tag) {
      using Q = decltype(tag);
      float inv_c = 1.0f / pc.scale;
      broadcast_map2(*plan, a->data<Q>(), b->data<Q>(), y.data<Q>(), ctx.num_threads(), [=](Q x, Q w) {
        float fa = static_cast<float>(static_cast<int32_t>(x) - pa.zp) * pa.scale;
        float fb = static_cast<float>(static_cast<int32_t>(w) - pb.zp) * pb.scale;
        return quantize_value<Q>((kMul ? fa * fb : fa + fb) * inv_c, pc.zp);
      });
      return ok_status();
    };
    return a->dtype() == DataType::kUInt8 ? run(uint8_t{}) : run(int8_t{});
  }
};

}  // namespace

void register_quantized_contrib_kernels(KernelRegistry& r) {
  r.add({"QLinearAdd", "com.microsoft", 1, kMaxOpset, {DataType::kUInt8, DataType::kInt8},
         kernel_factory<QLinearBinaryKernel<false>>()});
  r.add({"QLinearMul", "com.microsoft", 1, kMaxOpset, {DataType::kUInt8, DataType::kInt8},
         kernel_factory<QLinearBinaryKernel<true>>()});
}

}  // namespace hearth
