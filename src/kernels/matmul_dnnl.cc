// oneDNN matmul primitive wrapper: per-shape primitive cache and one-time
// packing of constant weights.
#include "kernels/matmul_dnnl.h"

#include <cstring>
#include <string>
#include <unordered_map>

#include "kernels/dnnl_common.h"
#include "kernels/gemv.h"

namespace hearth {

namespace {

constexpr size_t kMaxCacheEntries = 32;
constexpr size_t kMaxDnnlRank = 12;

dnnl::memory::dims to_dims(const Shape& s) { return dnnl::memory::dims(s.begin(), s.end()); }

std::vector<int64_t> cache_key(const MatmulOperand& a, const MatmulOperand& b, float alpha, bool b_constant,
                               const MatmulEpilogue& epi) {
  std::vector<int64_t> key;
  key.push_back(static_cast<int64_t>(a.dims.size()));
  for (const Shape* s : {&a.dims, &a.strides, &b.dims, &b.strides}) key.insert(key.end(), s->begin(), s->end());
  uint32_t alpha_bits = 0;
  std::memcpy(&alpha_bits, &alpha, sizeof(alpha_bits));
  key.push_back(alpha_bits);
  key.push_back(b_constant ? 1 : 0);
  key.push_back(epi.bias ? 1 : 0);
  key.push_back(static_cast<int64_t>(epi.act));
  return key;
}

// Rows of N floats that would be a multiple of 1 KiB apart.
bool aliasing_rows(int64_t n) { return n >= 256 && n % 256 == 0; }

// Constant weights worth one copy into dense rows (see padded_rows): rows a
// multiple of 1 KiB apart alias in L1 as oneDNN's sgemm walks down K (N = 1024
// ran at half the speed of N = 768 here), and transposed weights (Gemm with
// transB, a MatMul reading a Transpose) ran slower than dense rows:
// [128,256] x [256,1024] took 1.5 ms transposed, 0.76 ms dense and padded.
bool worth_a_dense_copy(const MatmulOperand& b) {
  const size_t r = b.dims.size();
  if (b.dims[r - 2] < 64 || b.dims[r - 1] < 8) return false;
  return b.strides != shape_strides(b.dims) || aliasing_rows(b.dims[r - 1]);
}

// `b`'s dims in dense rows, each padded by 16 floats (one 64-byte line) when
// they would alias.
dnnl::memory::desc padded_rows(const MatmulOperand& b) {
  const size_t r = b.dims.size();
  Shape strides(r);
  int64_t stride = 1;
  for (size_t d = r; d-- > 0;) {
    strides[d] = stride;
    stride *= d == r - 1 && aliasing_rows(b.dims[d]) ? b.dims[d] + 16 : b.dims[d];
  }
  return dnnl::memory::desc(to_dims(b.dims), dnnl::memory::data_type::f32, to_dims(strides));
}

}  // namespace

Shape dense_strides(const Shape& dims) { return shape_strides(dims); }

Status sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return ok_status();
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
    return ok_status();
  }
  dnnl_status_t s = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (s != dnnl_success) {
    return internal_error("oneDNN sgemm failed (status ", static_cast<int>(s), ") for M=", M, " N=", N, " K=", K);
  }
  return ok_status();
}

struct DnnlMatmul::Entry {
  dnnl::matmul prim;
  dnnl::memory::desc a_md, b_user_md, dst_md, bias_md;
  dnnl::memory packed_b;  // empty unless b is constant and oneDNN wants another layout
  bool b_packed = false;
  bool declined = false;  // oneDNN offered only its reference loops: callers copy and retry
};

DnnlMatmul::DnnlMatmul() = default;
DnnlMatmul::~DnnlMatmul() = default;

Result<DnnlMatmul::Entry*> DnnlMatmul::entry_for(const MatmulOperand& a, const MatmulOperand& b, float alpha,
                                                 bool b_constant, const MatmulEpilogue& epi) {
  auto key = cache_key(a, b, alpha, b_constant, epi);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second.get();
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();

  using dt = dnnl::memory::data_type;
  auto e = std::make_unique<Entry>();
  const size_t r = a.dims.size();
  Shape dst_dims(r);
  for (size_t d = 0; d + 2 < r; ++d) dst_dims[d] = a.dims[d] == 1 ? b.dims[d] : a.dims[d];
  dst_dims[r - 2] = a.dims[r - 2];
  dst_dims[r - 1] = b.dims[r - 1];
  e->a_md = dnnl::memory::desc(to_dims(a.dims), dt::f32, to_dims(a.strides));
  e->b_user_md = dnnl::memory::desc(to_dims(b.dims), dt::f32, to_dims(b.strides));
  e->dst_md = dnnl::memory::desc(to_dims(dst_dims), dt::f32, to_dims(dense_strides(dst_dims)));
  if (epi.bias) {
    Shape bias_dims(r, 1);
    bias_dims[r - 1] = dst_dims[r - 1];
    e->bias_md = dnnl::memory::desc(to_dims(bias_dims), dt::f32, to_dims(dense_strides(bias_dims)));
  }
  dnnl::primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (epi.act != MatmulActivation::kNone) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f,
                       epi.act == MatmulActivation::kGelu ? dnnl::algorithm::eltwise_gelu_erf
                                                          : dnnl::algorithm::eltwise_gelu_tanh,
                       0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  // The 4-descriptor form takes a bias; an empty bias_md means none.
  auto make_desc = [&](const dnnl::memory::desc& w) { return dnnl::matmul::desc(e->a_md, w, e->bias_md, e->dst_md); };
  auto& eng = dnnl_cpu_engine();
  dnnl::matmul::primitive_desc pd;
  bool packed = false;
  if (b_constant) {
    // Let oneDNN choose the weights layout; fall back to the user layout below.
    try {
      auto any_md = dnnl::memory::desc(to_dims(b.dims), dt::f32, dnnl::memory::format_tag::any);
      pd = dnnl::matmul::primitive_desc(make_desc(any_md), attr, eng);
      packed = true;
    } catch (const dnnl::error&) {
      packed = false;
    }
  }
  if (!packed) {
    try {
      pd = dnnl::matmul::primitive_desc(make_desc(e->b_user_md), attr, eng);
    } catch (const dnnl::error& err) {
      return unimplemented("oneDNN matmul has no implementation for ", shape_str(a.dims), " x ",
                           shape_str(b.dims), " (", err.what(), ")");
    }
  }
  const dnnl::memory::desc dense_b(to_dims(b.dims), dt::f32, to_dims(shape_strides(b.dims)));
  const bool plain_choice = pd.weights_desc() == e->b_user_md || pd.weights_desc() == dense_b;
  if (packed && plain_choice && worth_a_dense_copy(b)) {
    // oneDNN keeps constant weights in a plain layout (as given, or dense rows):
    // copy them once into dense rows, padded where they would alias.
    try {
      auto padded = dnnl::matmul::primitive_desc(make_desc(padded_rows(b)), attr, eng);
      if (std::string(padded.impl_info_str()).rfind("ref", 0) != 0) pd = padded;  // never onto the slow loops
    } catch (const dnnl::error&) {
      // keep the unpadded primitive
    }
  }
  // Strided (transposed) operands can land on oneDNN's reference loops, which are
  // far slower than copying the operand dense first: let the caller do that.
  const bool dense = a.strides == shape_strides(a.dims) && b.strides == shape_strides(b.dims);
  if (!dense && std::string(pd.impl_info_str()).rfind("ref", 0) == 0) e->declined = true;
  if (e->declined) {  // remembered, so the next call answers at once
    Entry* raw = e.get();
    cache_[key] = std::move(e);
    return raw;
  }
  e->prim = dnnl::matmul(pd);
  e->b_packed = packed && pd.weights_desc() != e->b_user_md;
  if (e->b_packed) e->packed_b = dnnl::memory(pd.weights_desc(), eng);
  Entry* raw = e.get();
  cache_[key] = std::move(e);
  if (raw->b_packed) {
    // Pack the constant weights once for this shape.
    try {
      dnnl::stream s(eng);
      dnnl::memory user_b(raw->b_user_md, eng, const_cast<float*>(b.data));
      dnnl::reorder(user_b, raw->packed_b).execute(s, user_b, raw->packed_b);
      s.wait();
    } catch (const dnnl::error& err) {
      cache_.erase(key);
      return dnnl_error_status(err, "packing MatMul weights");
    }
  }
  return raw;
}

bool DnnlMatmul::try_gemv(const MatmulOperand& a, const MatmulOperand& b, float* dst, float alpha, bool b_constant,
                          const MatmulEpilogue& epilogue, int threads) {
  const size_t r = a.dims.size();
  if (!b_constant || epilogue.act != MatmulActivation::kNone || !gemv_available()) return false;
  for (size_t d = 0; d + 2 < r; ++d)
    if (a.dims[d] != 1 || b.dims[d] != 1) return false;  // one matrix product
  const int64_t M = a.dims[r - 2], K = a.dims[r - 1], N = b.dims[r - 1];
  // A's rows contiguous; B with a unit stride (dense rows, or transposed as Gemm's
  // transB and PyTorch's Linear store it).
  // Up to kGemvMaxRows rows: classifiers at batch 8 then never wait for oneDNN's
  // GEMM JIT (18.7 ms on the first call of the zoo MLP's first layer, 20 on
  // mobilenet_v3_small's first classifier layer). Small products too: no oneDNN
  // dispatch, and the hand loops handle any K, N.
  const bool cached = K * N <= kGemvCachedWeights;
  if (M < 1 || M > kGemvMaxRows || a.strides[r - 1] != 1) return false;
  if (!cached && (K < 16 || N < 16)) return false;
  if (b.strides[r - 2] != 1 && b.strides[r - 1] != 1) return false;
  // B as plain [K, N] rows is read once per 4 rows of A (gemv_rows' column form):
  // past 4 rows, weights that do not stay in cache go to oneDNN, which reads them once.
  if (!cached && b.strides[r - 2] != 1 && M > 4) return false;
  gemv_rows(M, N, K, a.data, a.strides[r - 2], b.data, b.strides[r - 2], b.strides[r - 1], alpha, epilogue.bias, dst,
            threads);
  return true;
}

Status DnnlMatmul::run(const MatmulOperand& a, const MatmulOperand& b, float* dst, float alpha, bool b_constant,
                       const MatmulEpilogue& epilogue, int threads) {
  const size_t r = a.dims.size();
  if (r < 2 || r > kMaxDnnlRank || b.dims.size() != r || a.strides.size() != r || b.strides.size() != r) {
    return unimplemented("oneDNN matmul needs operands of one rank in 2..12, got ", shape_str(a.dims), " x ",
                         shape_str(b.dims));
  }
  if (try_gemv(a, b, dst, alpha, b_constant, epilogue, threads)) return ok_status();
  try {
    HEARTH_ASSIGN_OR_RETURN(Entry * e, entry_for(a, b, alpha, b_constant, epilogue));
    if (e->declined) return unimplemented("oneDNN matmul has only its reference implementation for these strides");
    auto& eng = dnnl_cpu_engine();
    thread_local dnnl::stream s(eng);
    dnnl::memory am(e->a_md, eng, const_cast<float*>(a.data));
    dnnl::memory bm = e->b_packed ? e->packed_b : dnnl::memory(e->b_user_md, eng, const_cast<float*>(b.data));
    dnnl::memory dm(e->dst_md, eng, dst);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, dm}};
    if (epilogue.bias) args[DNNL_ARG_BIAS] = dnnl::memory(e->bias_md, eng, const_cast<float*>(epilogue.bias));
    e->prim.execute(s, args);
    s.wait();
  } catch (const dnnl::error& err) {
    return dnnl_error_status(err, "MatMul");
  }
  return ok_status();
}

}  // namespace hearth
