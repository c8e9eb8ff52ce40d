// Kernel family: quantized, matmul part. MatMulInteger (int32 output) and
// QLinearMatMul (requantized uint8/int8 output) with numpy batch broadcasting.
// Both accumulate exactly in int32 through qgemm_nt (quantized_gemm.cc): each
// batch is widened to int16 with zero points subtracted and B is transposed, so
// the inner loop is a contiguous dot product.
#include <algorithm>
#include <cmath>

#include "kernels/kernel.h"
#include "kernels/matmul_ref.h"
#include "kernels/quantized_common.h"

namespace hearth {
namespace {

// The numpy shape plan is matmul_ref.h's, shared with MatMul; errors name the node.
Result<MatmulPlan> plan_quantized_matmul(const Shape& a, const Shape& b, const Node& node) {
  auto p = plan_matmul(a, b);
  if (!p.ok()) return p.status().with_context(node.describe());
  return p;
}

Status check_count(size_t count, int64_t want, const Node& node, const char* what) {
  if (count != 1 && static_cast<int64_t>(count) != want)
    return invalid_argument(node.describe(), ": ", what, " has ", count, " values, expected 1 or ", want);
  return ok_status();
}

// Runs every batch of A(uint8/int8) x B(uint8/int8) into int32 accumulators, calling
// emit(batch, acc) with the M x N result of each batch.
template <typename Emit>
Status integer_matmul(const Tensor& a, const Tensor& b, const std::vector<int32_t>& azp,
                      const std::vector<int32_t>& bzp, const MatmulPlan& p, const Node& node, Emit&& emit) {
  std::vector<int16_t> aw(static_cast<size_t>(p.M * p.K)), bt(static_cast<size_t>(p.N * p.K));
  std::vector<int32_t> acc(static_cast<size_t>(p.M * p.N));
  auto widen_a = [&](auto tag, int64_t off) {
    using T = decltype(tag);
    widen_minus_zp(a.data<T>() + off, p.M, p.K, azp, aw.data());
  };
  auto widen_b = [&](auto tag, int64_t off) {
    using T = decltype(tag);
    const T* src = b.data<T>() + off;
    for (int64_t k = 0; k < p.K; ++k)
      for (int64_t n = 0; n < p.N; ++n)
        bt[n * p.K + k] = static_cast<int16_t>(static_cast<int32_t>(src[k * p.N + n]) - (bzp.size() == 1 ? bzp[0] : bzp[n]));
  };
  bool a_u8 = a.dtype() == DataType::kUInt8, b_u8 = b.dtype() == DataType::kUInt8;
  if ((!a_u8 && a.dtype() != DataType::kInt8) || (!b_u8 && b.dtype() != DataType::kInt8))
    return unimplemented(node.describe(), ": integer matmul of ", dtype_name(a.dtype()), " x ",
                         dtype_name(b.dtype()), " is not supported (uint8/int8 only)");
  int64_t prev_b = -1;
  for (int64_t t = 0; t < p.batch_count(); ++t) {
    int64_t ao = 0, bo = 0;
    matmul_batch_offsets(p, t, &ao, &bo);
    if (a_u8) widen_a(uint8_t{}, ao); else widen_a(int8_t{}, ao);
    if (bo != prev_b) {
      if (b_u8) widen_b(uint8_t{}, bo); else widen_b(int8_t{}, bo);
      prev_b = bo;
    }
    qgemm_nt(p.M, p.N, p.K, aw.data(), bt.data(), acc.data());
    emit(t, acc.data());
  }
  return ok_status();
}

class MatMulIntegerKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    if (!a || !b) return invalid_argument(node.describe(), ": inputs A and B are required");
    HEARTH_ASSIGN_OR_RETURN(MatmulPlan p, plan_quantized_matmul(a->shape(), b->shape(), node));
    HEARTH_RETURN_IF_ERROR(check_8bit_zero_point(ctx.input(2), node, "a_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_8bit_zero_point(ctx.input(3), node, "b_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto azp, read_zero_points(ctx.input(2), node, "a_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto bzp, read_zero_points(ctx.input(3), node, "b_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_count(azp.size(), p.M, node, "a_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_count(bzp.size(), p.N, node, "b_zero_point"));
    Tensor& y = ctx.allocate_output(0, DataType::kInt32, p.out_shape);
    if (y.numel() == 0) return ok_status();  // no batch to run, however many the dims say
    int32_t* yp = y.data<int32_t>();
    int64_t mn = p.M * p.N;
    return integer_matmul(*a, *b, azp, bzp, p, node,
                          [&](int64_t t, const int32_t* acc) { std::copy(acc, acc + mn, yp + t * mn); });
  }
};

class QLinearMatMulKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    for (size_t i : {0, 1, 3, 4, 6})
      if (!ctx.input(i)) return invalid_argument(node.describe(), ": input ", i, " is required");
    const Tensor& a = *ctx.input(0);
    const Tensor& b = *ctx.input(3);
    HEARTH_ASSIGN_OR_RETURN(MatmulPlan p, plan_quantized_matmul(a.shape(), b.shape(), node));
    HEARTH_RETURN_IF_ERROR(check_8bit_zero_point(ctx.input(2), node, "a_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_8bit_zero_point(ctx.input(5), node, "b_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto as, read_scales(*ctx.input(1), node, "a_scale"));
    HEARTH_ASSIGN_OR_RETURN(auto azp, read_zero_points(ctx.input(2), node, "a_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto bs, read_scales(*ctx.input(4), node, "b_scale"));
    HEARTH_ASSIGN_OR_RETURN(auto bzp, read_zero_points(ctx.input(5), node, "b_zero_point"));
    HEARTH_ASSIGN_OR_RETURN(auto ys, read_scales(*ctx.input(6), node, "y_scale"));
    HEARTH_ASSIGN_OR_RETURN(auto yzp, read_zero_points(ctx.input(7), node, "y_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_count(as.size(), p.M, node, "a_scale"));
    HEARTH_RETURN_IF_ERROR(check_count(azp.size(), p.M, node, "a_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_count(bs.size(), p.N, node, "b_scale"));
    HEARTH_RETURN_IF_ERROR(check_count(bzp.size(), p.N, node, "b_zero_point"));
    if (ys.size() != 1 || yzp.size() != 1)
      return invalid_argument(node.describe(), ": y_scale and y_zero_point must be scalars");
    DataType out_type = ctx.input(7) ? ctx.input(7)->dtype() : DataType::kUInt8;
    if (out_type != DataType::kUInt8 && out_type != DataType::kInt8)
      return unimplemented(node.describe(), ": QLinearMatMul output dtype ", dtype_name(out_type));
    Tensor& y = ctx.allocate_output(0, out_type, p.out_shape);
    if (y.numel() == 0) return ok_status();
    int64_t mn = p.M * p.N;
    auto requant = [&](auto tag) {
      using Q = decltype(tag);
      Q* yp = y.data<Q>();
      return integer_matmul(a, b, azp, bzp, p, node, [&](int64_t t, const int32_t* acc) {
        const int32_t zp = yzp[0];
        const int64_t N = p.N;
        for (int64_t m = 0; m < p.M; ++m) {
          const float am = as[as.size() == 1 ? 0 : m];  // multiplier = a_scale * b_scale / y_scale, ORT's order
          Q* out = yp + t * mn + m * N;
          const int32_t* a = acc + m * N;
          if (bs.size() == 1) {
            const float mult = am * bs[0] / ys[0];
#pragma omp simd
            for (int64_t n = 0; n < N; ++n) out[n] = quantize_value<Q>(static_cast<float>(a[n]) * mult, zp);
          } else {
#pragma omp simd
            for (int64_t n = 0; n < N; ++n) out[n] = quantize_value<Q>(static_cast<float>(a[n]) * (am * bs[n] / ys[0]), zp);
          }
        }
      });
    };
    return out_type == DataType::kUInt8 ? requant(uint8_t{}) : requant(int8_t{});
  }
};

}  // namespace

void register_quantized_matmul_kernels(KernelRegistry& r) {
  r.add({"MatMulInteger", "", 10, kMaxOpset, {DataType::kUInt8, DataType::kInt8}, kernel_factory<MatMulIntegerKernel>()});
  r.add({"QLinearMatMul", "", 10, kMaxOpset, {DataType::kUInt8, DataType::kInt8}, kernel_factory<QLinearMatMulKernel>()});
}

}  // namespace hearth
