// Kernel family: matrix products. MatMul (numpy semantics) and Gemm.
// float32 runs on oneDNN's matmul primitive (matmul_dnnl.h); other element
// types, and shapes oneDNN declines, run on the reference loops (matmul_ref.h).
// float16/bfloat16 are computed in float32 and rounded back. ai.hearth
// FusedMatMul (graph/optimizer.h) is alpha * MatMul(perm_a(A), perm_b(B)) [+ bias]
// [+ GELU] in one oneDNN pass: transposed inputs are read through strides.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernel.h"
#include "kernels/matmul_dnnl.h"
#include "kernels/matmul_ref.h"
#include "kernels/register_all.h"
#include "kernels/shape_util.h"

namespace hearth {

namespace {

bool is_half(DataType t) { return t == DataType::kFloat16 || t == DataType::kBFloat16; }

// True when `t` is the very tensor (same memory) that init() saw as a constant.
bool same_tensor(const Tensor& t, const Tensor& constant) {
  return constant.defined() && t.raw_data() == constant.raw_data() && t.shape() == constant.shape();
}

// Runs fn(T{}) for the element types the reference loops cover.
template <typename Fn>
Status dispatch_reference(DataType t, const Node& node, Fn&& fn) {
  switch (t) {
    case DataType::kFloat: return fn(float{});
    case DataType::kDouble: return fn(double{});
    case DataType::kInt32: return fn(int32_t{});
    case DataType::kInt64: return fn(int64_t{});
    case DataType::kUInt32: return fn(uint32_t{});
    case DataType::kUInt64: return fn(uint64_t{});
    default: return unimplemented(node.describe(), ": element type ", dtype_name(t), " is not supported");
  }
}

Status check_inputs(const KernelContext& ctx, size_t required) {
  for (size_t i = 0; i < required; ++i) {
    if (!ctx.input(i)) return invalid_argument(ctx.node().describe(), ": required input ", i, " is missing");
  }
  DataType t = ctx.input(0)->dtype();
  for (size_t i = 1; i < ctx.num_inputs(); ++i) {
    const Tensor* in = ctx.input(i);
    if (in && in->dtype() != t) {
      return invalid_argument(ctx.node().describe(), ": input ", i, " has type ", dtype_name(in->dtype()),
                              " but input 0 has type ", dtype_name(t));
    }
  }
  return ok_status();
}

// Casts 16-bit float inputs to float32 (others are returned as is).
Result<Tensor> widen(const Tensor& t) {
  if (!is_half(t.dtype())) return t;
  return cast_tensor(t, DataType::kFloat);
}

// When B is one matrix shared by every batch entry and A is not broadcast,
// [batch..., M, K] x [K, N] is a single [batch*M, K] x [K, N] product: one
// large GEMM instead of many small ones (e.g. Linear layers on [seq, batch, hidden]).
void fold_shared_b(MatmulPlan& p) {
  if (p.batch.empty()) return;
  const size_t nb = p.batch.size();
  for (size_t i = 0; i < nb; ++i)
    if (p.b_full[i] != 1 || p.a_full[i] != p.batch[i]) return;
  p.M *= p.batch_count();
  p.batch.clear();
  p.a_full = {p.M, p.K};
  p.b_full = {p.K, p.N};
}

// y = act(y + bias) over rows of n, for the reference path of FusedMatMul.
void apply_epilogue(const MatmulEpilogue& e, float* y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      float v = y[r * n + j] + (e.bias ? e.bias[j] : 0.0f);
      if (e.act == MatmulActivation::kGelu) v = 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
      if (e.act == MatmulActivation::kGeluTanh)
        v = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
      y[r * n + j] = v;
    }
}

class MatMulKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    if (const Tensor* b = info.constant_input(1)) b_const_ = *b;
    fused_ = info.node.op_type == "FusedMatMul";
    if (fused_) {
      const std::string act = info.node.attr_string("activation", "");
      if (act == "Gelu") act_ = MatmulActivation::kGelu;
      else if (act == "GeluTanh") act_ = MatmulActivation::kGeluTanh;
      else if (!act.empty()) return unimplemented("FusedMatMul activation '", act, "' is not supported");
      alpha_ = info.node.attr_float("alpha", 1.0f);
      perm_a_ = info.node.attr_ints("perm_a");
      perm_b_ = info.node.attr_ints("perm_b");
      const bool epilogue = act_ != MatmulActivation::kNone || info.node.inputs.size() > 2;
      if (alpha_ != 1.0f && epilogue) return unimplemented("FusedMatMul with both alpha and a bias or activation");
    }
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    threads_ = std::max(1, ctx.num_threads());
    HEARTH_RETURN_IF_ERROR(check_inputs(ctx, 2));
    const Tensor& a = *ctx.input(0);
    const Tensor& b = *ctx.input(1);
    if (fused_) return compute_fused(ctx, a, b);
    auto plan = plan_matmul(a.shape(), b.shape());
    if (!plan.ok()) return plan.status().with_context(ctx.node().describe());
    fold_shared_b(*plan);
    const DataType t = a.dtype();
    if (is_half(t)) {
      HEARTH_ASSIGN_OR_RETURN(Tensor af, widen(a));
      HEARTH_ASSIGN_OR_RETURN(Tensor bf, widen(b));
      Tensor yf(DataType::kFloat, plan->out_shape);
      HEARTH_RETURN_IF_ERROR(run(ctx.node(), *plan, af, bf, yf, false));
      HEARTH_ASSIGN_OR_RETURN(Tensor y, cast_tensor(yf, t, ctx.allocator()));
      ctx.set_output(0, std::move(y));
      return ok_status();
    }
    Tensor& y = ctx.allocate_output(0, t, plan->out_shape);
    return run(ctx.node(), *plan, a, b, y, same_tensor(b, b_const_));
  }

 private:
  Status run(const Node& node, const MatmulPlan& p, const Tensor& a, const Tensor& b, Tensor& y, bool b_constant) {
    if (y.numel() == 0) return ok_status();
    if (p.K == 0) {
      std::memset(y.raw_data(), 0, y.nbytes());
      return ok_status();
    }
    if (a.dtype() == DataType::kFloat) {
      MatmulOperand ao{p.a_full, dense_strides(p.a_full), a.data<float>()};
      MatmulOperand bo{p.b_full, dense_strides(p.b_full), b.data<float>()};
      Status s = dnnl_.run(ao, bo, y.data<float>(), 1.0f, b_constant, {}, threads_);
      if (s.code() != StatusCode::kUnimplemented) return s.with_context(node.describe());
    }
    return dispatch_reference(a.dtype(), node, [&](auto tag) {
      using T = decltype(tag);
      matmul_reference<T>(p, a.data<T>(), b.data<T>(), y.data<T>());
      return ok_status();
    });
  }

  // `t` seen through `perm` (empty: as is): the permuted dims and their strides.
  static Result<MatmulOperand> view(const Tensor& t, const std::vector<int64_t>& perm, const Node& node,
                                    const char* name) {
    MatmulOperand v{t.shape(), dense_strides(t.shape()), t.data<float>()};
    if (perm.empty()) return v;
    if (perm.size() != t.rank())
      return invalid_argument(node.describe(), ": perm_", name, " has ", perm.size(), " entries for ", t.describe());
    std::vector<bool> seen(perm.size(), false);
    for (size_t i = 0; i < perm.size(); ++i) {
      const int64_t p = perm[i];
      if (p < 0 || p >= static_cast<int64_t>(perm.size()) || seen[p])
        return invalid_argument(node.describe(), ": perm_", name, " ", shape_str(perm), " is not a permutation");
      seen[p] = true;
      v.dims[i] = t.dim(p);
      v.strides[i] = dense_strides(t.shape())[p];
    }
    return v;
  }

  // The operand's strides padded to `full` (plan_matmul's a_full/b_full): leading
  // and inserted dims of size 1 get any stride (they are never stepped along).
  static MatmulOperand widen_to(const MatmulOperand& v, const Shape& full) {
    MatmulOperand w{full, Shape(full.size(), 0), v.data};
    if (v.dims.size() == 1) {  // a vector: [K] became [1, K] (A) or [K, 1] (B)
      for (size_t i = 0; i < full.size(); ++i) w.strides[i] = full[i] == v.dims[0] ? v.strides[0] : 1;
      return w;
    }
    const size_t pad = full.size() - v.dims.size();
    for (size_t i = 0; i < pad; ++i) w.strides[i] = 1;
    for (size_t i = 0; i < v.dims.size(); ++i) w.strides[pad + i] = v.strides[i];
    return w;
  }

  // A dense copy of `t` seen through `perm`.
  static Result<Tensor> materialize(const Tensor& t, const std::vector<int64_t>& perm, const MatmulOperand& v,
                                    int threads) {
    if (perm.empty()) return t;
    Tensor d(DataType::kFloat, v.dims);
    HEARTH_RETURN_IF_ERROR(permute_copy(t, t.shape(), perm, d, threads));
    return d;
  }

  Status compute_fused(KernelContext& ctx, const Tensor& a, const Tensor& b) {
    const Node& node = ctx.node();
    if (a.dtype() != DataType::kFloat)
      return invalid_argument(node.describe(), ": FusedMatMul is float32 only, got ", a.describe());
    HEARTH_ASSIGN_OR_RETURN(MatmulOperand va, view(a, perm_a_, node, "a"));
    HEARTH_ASSIGN_OR_RETURN(MatmulOperand vb, view(b, perm_b_, node, "b"));
    auto planned = plan_matmul(va.dims, vb.dims);
    if (!planned.ok()) return planned.status().with_context(node.describe());
    MatmulPlan& p = *planned;
    const bool strided = !perm_a_.empty() || !perm_b_.empty();
    if (!strided) fold_shared_b(p);
    MatmulEpilogue epi;
    epi.act = act_;
    if (const Tensor* bias = ctx.input(2)) {
      if (bias->numel() != p.N)
        return invalid_argument(node.describe(), ": bias ", bias->describe(), " must have ", p.N, " elements");
      epi.bias = bias->data<float>();
    }
    Tensor& y = ctx.allocate_output(0, DataType::kFloat, p.out_shape);
    if (y.numel() == 0) return ok_status();
    if (p.K == 0) {
      std::memset(y.raw_data(), 0, y.nbytes());
      apply_epilogue(epi, y.data<float>(), y.numel() / p.N, p.N);
      return ok_status();
    }
    const MatmulOperand ao = strided ? widen_to(va, p.a_full) : MatmulOperand{p.a_full, dense_strides(p.a_full), va.data};
    const MatmulOperand bo = strided ? widen_to(vb, p.b_full) : MatmulOperand{p.b_full, dense_strides(p.b_full), vb.data};
    Status s = dnnl_.run(ao, bo, y.data<float>(), alpha_, same_tensor(b, b_const_), epi, threads_);
    if (s.code() != StatusCode::kUnimplemented) return s.with_context(node.describe());
    // oneDNN declined: dense copies of transposed operands and the reference loops.
    const int threads = std::max(1, ctx.num_threads());
    HEARTH_ASSIGN_OR_RETURN(Tensor ad, materialize(a, perm_a_, va, threads));
    HEARTH_ASSIGN_OR_RETURN(Tensor bd, materialize(b, perm_b_, vb, threads));
    matmul_reference<float>(p, ad.data<float>(), bd.data<float>(), y.data<float>());
    if (alpha_ != 1.0f)
      for (int64_t i = 0; i < y.numel(); ++i) y.data<float>()[i] *= alpha_;
    apply_epilogue(epi, y.data<float>(), y.numel() / p.N, p.N);
    return ok_status();
  }

  Tensor b_const_;
  DnnlMatmul dnnl_;
  int threads_ = 1;  // the running call's thread budget
  bool fused_ = false;
  MatmulActivation act_ = MatmulActivation::kNone;
  float alpha_ = 1.0f;
  std::vector<int64_t> perm_a_, perm_b_;  // FusedMatMul: inputs are read transposed
};

// Gemm's C input viewed as an [M, N] matrix with unidirectional broadcasting.
struct BiasView {
  int64_t rs = 0, cs = 0;
};

Result<BiasView> bias_view(const Tensor& c, int64_t M, int64_t N, const Node& node) {
  Shape s = c.shape();
  if (s.size() > 2) return invalid_argument(node.describe(), ": C of shape ", shape_str(s), " has rank > 2");
  s.insert(s.begin(), 2 - s.size(), 1);
  if ((s[0] != 1 && s[0] != M) || (s[1] != 1 && s[1] != N)) {
    return invalid_argument(node.describe(), ": C of shape ", shape_str(c.shape()),
                            " does not broadcast to the output [", M, ",", N, "]");
  }
  return BiasView{s[0] == 1 ? 0 : s[1], s[1] == 1 ? 0 : 1};
}

class GemmKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Node& n = info.node;
    opset_ = info.opset;
    alpha_ = n.attr_float("alpha", 1.0f);
    beta_ = n.attr_float("beta", 1.0f);
    trans_a_ = n.attr_int("transA", 0) != 0;
    trans_b_ = n.attr_int("transB", 0) != 0;
    if (const Tensor* b = info.constant_input(1)) b_const_ = *b;
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    threads_ = std::max(1, ctx.num_threads());
    HEARTH_RETURN_IF_ERROR(check_inputs(ctx, opset_ < 11 ? 3 : 2));
    const Node& node = ctx.node();
    const Tensor& a = *ctx.input(0);
    const Tensor& b = *ctx.input(1);
    const Tensor* c = ctx.input(2);
    if (a.rank() != 2 || b.rank() != 2) {
      return invalid_argument(node.describe(), ": A and B must be 2-D, got ", shape_str(a.shape()), " and ",
                              shape_str(b.shape()));
    }
    const int64_t M = trans_a_ ? a.dim(1) : a.dim(0), K = trans_a_ ? a.dim(0) : a.dim(1);
    const int64_t N = trans_b_ ? b.dim(0) : b.dim(1), Kb = trans_b_ ? b.dim(1) : b.dim(0);
    if (K != Kb) {
      return invalid_argument(node.describe(), ": inner dimensions differ: A' is [", M, ",", K, "], B' is [", Kb,
                              ",", N, "]");
    }
    BiasView cv;
    if (c) { HEARTH_ASSIGN_OR_RETURN(cv, bias_view(*c, M, N, node)); }
    if (is_half(a.dtype())) {
      HEARTH_ASSIGN_OR_RETURN(Tensor af, widen(a));
      HEARTH_ASSIGN_OR_RETURN(Tensor bf, widen(b));
      Tensor cf;
      if (c) { HEARTH_ASSIGN_OR_RETURN(cf, widen(*c)); }
      Tensor yf(DataType::kFloat, {M, N});
      HEARTH_RETURN_IF_ERROR(run(node, af, bf, c ? &cf : nullptr, cv, yf, false));
      HEARTH_ASSIGN_OR_RETURN(Tensor y, cast_tensor(yf, a.dtype(), ctx.allocator()));
      ctx.set_output(0, std::move(y));
      return ok_status();
    }
    Tensor& y = ctx.allocate_output(0, a.dtype(), {M, N});
    return run(node, a, b, c, cv, y, same_tensor(b, b_const_));
  }

 private:
  Status run(const Node& node, const Tensor& a, const Tensor& b, const Tensor* c, BiasView cv, Tensor& y,
             bool b_constant) {
    const int64_t M = y.dim(0), N = y.dim(1), K = trans_a_ ? a.dim(0) : a.dim(1);
    if (y.numel() == 0) return ok_status();
    if (a.dtype() == DataType::kFloat && K > 0) {
      MatmulOperand ao{{M, K}, trans_a_ ? Shape{1, M} : Shape{K, 1}, a.data<float>()};
      MatmulOperand bo{{K, N}, trans_b_ ? Shape{1, K} : Shape{N, 1}, b.data<float>()};
      // A per-column bias (C of [N] or [1, N]) is added by oneDNN in the same pass.
      const bool row_bias = c && beta_ == 1.0f && alpha_ == 1.0f && cv.rs == 0 && cv.cs == 1;
      MatmulEpilogue epi;
      if (row_bias) epi.bias = c->data<float>();
      Status s = dnnl_.run(ao, bo, y.data<float>(), alpha_, b_constant, epi, threads_);
      if (s.ok()) {
        if (c && beta_ != 0.0f && !row_bias) add_bias(c->data<float>(), cv, beta_, y.data<float>(), M, N);
        return ok_status();
      }
      if (s.code() != StatusCode::kUnimplemented) return s.with_context(node.describe());
    }
    return dispatch_reference(a.dtype(), node, [&](auto tag) {
      using T = decltype(tag);
      reference<T>(a, b, c, cv, y);
      return ok_status();
    });
  }

  // y += beta * C (broadcast), for the float32 path.
  static void add_bias(const float* c, BiasView cv, float beta, float* y, int64_t M, int64_t N) {
#pragma omp parallel for if (M * N > 65536)
    for (int64_t m = 0; m < M; ++m) {
      const float* crow = c + m * cv.rs;
      float* yrow = y + m * N;
      for (int64_t n = 0; n < N; ++n) yrow[n] += beta * crow[n * cv.cs];
    }
  }

  template <typename T>
  void reference(const Tensor& a, const Tensor& b, const Tensor* c, BiasView cv, Tensor& y) const {
    const int64_t M = y.dim(0), N = y.dim(1), K = trans_a_ ? a.dim(0) : a.dim(1);
    MatView<T> av{a.data<T>(), trans_a_ ? 1 : K, trans_a_ ? M : 1};
    MatView<T> bv{b.data<T>(), trans_b_ ? 1 : N, trans_b_ ? K : 1};
    T* yd = y.data<T>();
    gemm_reference<T>(M, N, K, av, bv, yd);
    const T* cd = c ? c->data<T>() : nullptr;
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        double v = static_cast<double>(alpha_) * static_cast<double>(yd[m * N + n]);
        if (cd && beta_ != 0.0f) v += static_cast<double>(beta_) * static_cast<double>(cd[m * cv.rs + n * cv.cs]);
        yd[m * N + n] = static_cast<T>(v);
      }
    }
  }

  int64_t opset_ = 0;
  float alpha_ = 1.0f, beta_ = 1.0f;
  bool trans_a_ = false, trans_b_ = false;
  Tensor b_const_;
  DnnlMatmul dnnl_;
  int threads_ = 1;  // the running call's thread budget
};

std::vector<DataType> matmul_types() {
  return {DataType::kFloat,  DataType::kDouble, DataType::kFloat16, DataType::kBFloat16, DataType::kInt32,
          DataType::kInt64,  DataType::kUInt32, DataType::kUInt64};
}

}  // namespace

void register_matmul_kernels(KernelRegistry& r) {
  r.add({"MatMul", "", 1, kMaxOpset, matmul_types(), kernel_factory<MatMulKernel>()});
  r.add({"Gemm", "", 1, kMaxOpset, matmul_types(), kernel_factory<GemmKernel>()});
  r.add({"FusedMatMul", "ai.hearth", 1, kMaxOpset, {DataType::kFloat}, kernel_factory<MatMulKernel>()});
}

}  // namespace hearth
