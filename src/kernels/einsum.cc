// Kernel family: reduce (tensor contractions). Einsum and Det.
//
// Einsum parses the equation once per distinct input ranks: every operand dim
// gets a label id (letters, plus one id per broadcast ellipsis dim), repeated
// labels inside an operand add their strides (diagonals / traces), size-1 dims
// broadcast with stride 0. Evaluation is a plain loop over output labels
// (outer) and summed labels (inner), accumulating in double for float types.
// Det uses LU decomposition with partial pivoting in double per matrix.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <string>
#include <type_traits>

#include "kernels/kernel.h"
#include "kernels/reduce_internal.h"

namespace hearth {
namespace {

constexpr int kEllipsisLabelBase = 128;  // label ids of ellipsis dims: 128 + k

struct EinsumTerm {
  std::vector<int> letters;  // char codes, with -1 marking the ellipsis position
  bool has_ellipsis = false;
};

// Parses one side term ("bij", "...ii", "") into letters / ellipsis marker.
Status parse_term(const std::string& s, const std::string& eq, EinsumTerm* term) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (term->has_ellipsis || s.compare(i, 3, "...") != 0) {
        return invalid_argument("equation '", eq, "' has a malformed or repeated ellipsis");
      }
      term->has_ellipsis = true;
      term->letters.push_back(-1);
      i += 2;
    } else if (std::isalpha(static_cast<unsigned char>(s[i]))) {
      term->letters.push_back(static_cast<unsigned char>(s[i]));
    } else {
      return invalid_argument("equation '", eq, "' has an invalid character '", s[i], "'");
    }
  }
  return ok_status();
}

struct EinsumEquation {
  std::vector<EinsumTerm> inputs;
  EinsumTerm output;
  bool explicit_output = false;
};

Result<EinsumEquation> parse_equation(const std::string& raw) {
  std::string eq;
  for (char c : raw)
    if (!std::isspace(static_cast<unsigned char>(c))) eq += c;
  EinsumEquation e;
  std::string lhs = eq;
  const size_t arrow = eq.find("->");
  if (arrow != std::string::npos) {
    lhs = eq.substr(0, arrow);
    e.explicit_output = true;
    HEARTH_RETURN_IF_ERROR(parse_term(eq.substr(arrow + 2), raw, &e.output));
  }
  size_t start = 0;
  while (true) {
    const size_t comma = lhs.find(',', start);
    EinsumTerm t;
    HEARTH_RETURN_IF_ERROR(parse_term(lhs.substr(start, comma - start), raw, &t));
    e.inputs.push_back(std::move(t));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return e;
}

// Equation bound to concrete operand shapes: label ids per operand dim, label sizes.
struct EinsumBinding {
  std::vector<std::vector<int>> operand_labels;
  std::vector<int> out_labels;
  std::vector<int> sum_labels;
  std::map<int, int64_t> size;
};

Result<EinsumBinding> bind_equation(const EinsumEquation& e, const std::vector<const Tensor*>& xs) {
  EinsumBinding b;
  int64_t ell_rank = 0;
  std::vector<int64_t> ell_of(xs.size(), 0);
  for (size_t i = 0; i < xs.size(); ++i) {
    const auto& t = e.inputs[i];
    const int64_t named = static_cast<int64_t>(t.letters.size()) - (t.has_ellipsis ? 1 : 0);
    const int64_t rank = static_cast<int64_t>(xs[i]->rank());
    if (rank < named || (!t.has_ellipsis && rank != named)) {
      return invalid_argument("operand ", i, " has rank ", rank, " but its term names ", named, " dims");
    }
    ell_of[i] = rank - named;
    ell_rank = std::max(ell_rank, ell_of[i]);
  }
  std::map<int, int> count;
  for (size_t i = 0; i < xs.size(); ++i) {
    std::vector<int> labels;
    for (int c : e.inputs[i].letters) {
      if (c != -1) {
        labels.push_back(c);
        continue;
      }
      for (int64_t k = ell_rank - ell_of[i]; k < ell_rank; ++k) labels.push_back(kEllipsisLabelBase + k);
    }
    for (size_t d = 0; d < labels.size(); ++d) {
      const int64_t dim = xs[i]->dim(d);
      auto it = b.size.find(labels[d]);
      if (it == b.size.end() || it->second == 1) {
        b.size[labels[d]] = dim;
      } else if (dim != 1 && dim != it->second) {
        return invalid_argument("operand ", i, " dim ", d, " has size ", dim, " but its label has size ", it->second);
      }
      count[labels[d]]++;
    }
    b.operand_labels.push_back(std::move(labels));
  }
  if (e.explicit_output) {
    for (int c : e.output.letters) {
      if (c == -1) {
        for (int64_t k = 0; k < ell_rank; ++k) b.out_labels.push_back(kEllipsisLabelBase + k);
        continue;
      }
      if (!count.count(c)) return invalid_argument("output label '", char(c), "' does not appear in any input");
      if (std::find(b.out_labels.begin(), b.out_labels.end(), c) != b.out_labels.end()) {
        return invalid_argument("output label '", char(c), "' is repeated");
      }
      b.out_labels.push_back(c);
    }
  } else {
    for (int64_t k = 0; k < ell_rank; ++k) b.out_labels.push_back(kEllipsisLabelBase + k);
    for (auto& [label, n] : count)  // std::map iterates in char-code order
      if (label < kEllipsisLabelBase && n == 1) b.out_labels.push_back(label);
  }
  for (auto& [label, n] : count)
    if (std::find(b.out_labels.begin(), b.out_labels.end(), label) == b.out_labels.end())
      b.sum_labels.push_back(label);
  return b;
}

// Per-operand element strides for each label of `labels` (0 where broadcast / absent).
std::vector<std::vector<int64_t>> label_strides(const EinsumBinding& b, const std::vector<const Tensor*>& xs,
                                                const std::vector<int>& labels) {
  std::vector<std::vector<int64_t>> st(xs.size(), std::vector<int64_t>(labels.size(), 0));
  for (size_t i = 0; i < xs.size(); ++i) {
    const auto strides = shape_strides(xs[i]->shape());
    for (size_t d = 0; d < b.operand_labels[i].size(); ++d) {
      if (xs[i]->dim(d) == 1) continue;
      for (size_t j = 0; j < labels.size(); ++j)
        if (labels[j] == b.operand_labels[i][d]) st[i][j] += strides[d];
    }
  }
  return st;
}

// Advances an odometer over `sizes`, updating each operand's offset by `st`.
inline void advance(std::vector<int64_t>& idx, const std::vector<int64_t>& sizes,
                    const std::vector<std::vector<int64_t>>& st, std::vector<int64_t>& off) {
  for (int64_t j = static_cast<int64_t>(sizes.size()) - 1; j >= 0; --j) {
    for (size_t i = 0; i < off.size(); ++i) off[i] += st[i][j];
    if (++idx[j] < sizes[j]) return;
    for (size_t i = 0; i < off.size(); ++i) off[i] -= st[i][j] * sizes[j];
    idx[j] = 0;
  }
}

// The generic loop runs out.numel() times the product of the summed sizes; a model
// whose equation and shapes would take longer than this is refused rather than run
// for hours ("a,b->" over two 1M-element inputs is 2^40 products).
constexpr int64_t kMaxEinsumLoopProducts = int64_t{1} << 34;

Status check_loop_work(const EinsumBinding& b, int64_t n_out, const Node& node) {
  int64_t work = n_out;
  for (int l : b.sum_labels) {
    if (mul_overflows(work, b.size.at(l), &work) || work > kMaxEinsumLoopProducts) {
      return unimplemented(node.describe(), ": this equation needs the generic loop over more than ",
                           kMaxEinsumLoopProducts, " products, which is refused");
    }
  }
  return ok_status();
}

template <typename T>
void einsum_loop(const EinsumBinding& b, const std::vector<const Tensor*>& xs, Tensor& out) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
  std::vector<int64_t> osz, ssz;
  for (int l : b.out_labels) osz.push_back(b.size.at(l));
  for (int l : b.sum_labels) ssz.push_back(b.size.at(l));
  const auto ost = label_strides(b, xs, b.out_labels);
  const auto sst = label_strides(b, xs, b.sum_labels);
  const int64_t n_out = out.numel();
  const int64_t n_sum = shape_numel(ssz);
  std::vector<const T*> ptr;
  for (const Tensor* x : xs) ptr.push_back(x->data<T>());
  std::vector<int64_t> oidx(osz.size(), 0), ooff(xs.size(), 0);
  T* y = out.data<T>();
  for (int64_t o = 0; o < n_out; ++o) {
    Acc sum = 0;
    std::vector<int64_t> sidx(ssz.size(), 0), soff(xs.size(), 0);
    for (int64_t s = 0; s < n_sum; ++s) {
      Acc prod = 1;
      for (size_t i = 0; i < ptr.size(); ++i) prod *= static_cast<Acc>(ptr[i][ooff[i] + soff[i]]);
      sum += prod;
      advance(sidx, ssz, sst, soff);
    }
    y[o] = static_cast<T>(sum);
    advance(oidx, osz, ost, ooff);
  }
}

// Copies `src` (dims labelled `src_labels`) into contiguous `dst` ordered by
// `dst_labels` (a permutation of src_labels).
template <typename T>
void permute_copy(const T* src, const Shape& src_shape, const std::vector<int>& src_labels,
                  const std::vector<int>& dst_labels, T* dst) {
  const auto strides = shape_strides(src_shape);
  std::vector<int64_t> sz, st;
  for (int l : dst_labels) {
    const size_t d = std::find(src_labels.begin(), src_labels.end(), l) - src_labels.begin();
    sz.push_back(src_shape[d]);
    st.push_back(strides[d]);
  }
  if (sz.empty()) {
    dst[0] = src[0];
    return;
  }
  const int64_t inner = sz.back(), inner_st = st.back();
  const int64_t rows = shape_numel(sz) / std::max<int64_t>(inner, 1);
  std::vector<std::vector<int64_t>> st1 = {std::vector<int64_t>(st.begin(), st.end() - 1)};
  std::vector<int64_t> osz(sz.begin(), sz.end() - 1), idx(osz.size(), 0), off(1, 0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = src + off[0];
    for (int64_t j = 0; j < inner; ++j) dst[r * inner + j] = s[j * inner_st];
    advance(idx, osz, st1, off);
  }
}

// Two-operand contraction with no diagonal, broadcast or single-operand summed
// labels, computed as batched matmul [B,M,K] x [B,K,N] -> [B,M,N]. Returns false
// when the equation does not have that form (the plain loop handles it).
template <typename T>
bool einsum_as_matmul(const EinsumBinding& b, const std::vector<const Tensor*>& xs, Tensor& out, int threads) {
  if (xs.size() != 2 || !std::is_floating_point_v<T>) return false;
  const auto& la = b.operand_labels[0];
  const auto& lb = b.operand_labels[1];
  for (size_t i = 0; i < 2; ++i) {
    const auto& ls = b.operand_labels[i];
    for (size_t d = 0; d < ls.size(); ++d) {
      if (xs[i]->dim(d) != b.size.at(ls[d])) return false;  // broadcast dim
      if (std::count(ls.begin(), ls.end(), ls[d]) != 1) return false;  // diagonal
    }
  }
  const auto has = [](const std::vector<int>& v, int l) { return std::find(v.begin(), v.end(), l) != v.end(); };
  std::vector<int> batch, m, n, k;
  for (int l : b.out_labels) (has(la, l) && has(lb, l) ? batch : has(la, l) ? m : n).push_back(l);
  for (int l : b.sum_labels) {
    if (!has(la, l) || !has(lb, l)) return false;
    k.push_back(l);
  }
  const auto prod = [&](const std::vector<int>& ls) {
    int64_t p = 1;
    for (int l : ls) p *= b.size.at(l);
    return p;
  };
  const int64_t B = prod(batch), M = prod(m), N = prod(n), K = prod(k);
  auto cat = [](std::vector<int> a, const std::vector<int>& c, const std::vector<int>& d) {
    a.insert(a.end(), c.begin(), c.end());
    a.insert(a.end(), d.begin(), d.end());
    return a;
  };
  const std::vector<int> a_order = cat(batch, m, k), b_order = cat(batch, k, n), c_order = cat(batch, m, n);
  std::vector<T> ap, bp, cp(B * M * N, T(0));
  const T* A = xs[0]->data<T>();
  const T* Bm = xs[1]->data<T>();
  if (a_order != la) {
    ap.resize(B * M * K);
    permute_copy(A, xs[0]->shape(), la, a_order, ap.data());
    A = ap.data();
  }
  if (b_order != lb) {
    bp.resize(B * K * N);
    permute_copy(Bm, xs[1]->shape(), lb, b_order, bp.data());
    Bm = bp.data();
  }
  const bool direct = c_order == b.out_labels;
  T* C = direct ? out.data<T>() : cp.data();
  const bool par = B * M * N * K >= (1 << 16) && threads > 1;
#pragma omp parallel for num_threads(threads) if (par) schedule(static)
  for (int64_t bm = 0; bm < B * M; ++bm) {
    const int64_t bi = bm / M;
    T* crow = C + bm * N;
    std::fill(crow, crow + N, T(0));
    const T* arow = A + bm * K;
    for (int64_t kk = 0; kk < K; ++kk) {
      const T a = arow[kk];
      const T* brow = Bm + (bi * K + kk) * N;
      for (int64_t j = 0; j < N; ++j) crow[j] += a * brow[j];
    }
  }
  if (!direct) {
    Shape c_shape;
    for (int l : c_order) c_shape.push_back(b.size.at(l));
    permute_copy(C, c_shape, c_order, b.out_labels, out.data<T>());
  }
  return true;
}

class EinsumKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    equation_ = info.node.attr_string("equation", "");
    auto e = parse_equation(equation_);
    if (!e.ok()) return e.status();
    eq_ = std::move(e).value();
    if (eq_.inputs.size() != info.node.inputs.size()) {
      return invalid_argument("equation '", equation_, "' has ", eq_.inputs.size(), " operand terms but the node has ",
                              info.node.inputs.size(), " inputs");
    }
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    std::vector<Tensor> owned;
    std::vector<const Tensor*> xs;
    DataType dtype = DataType::kUndefined;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor* t = ctx.input(i);
      if (!t) return invalid_argument(node.describe(), ": input ", i, " is missing");
      if (i == 0) dtype = t->dtype();
      if (t->dtype() != dtype) return invalid_argument(node.describe(), ": inputs must share one dtype");
      owned.push_back(*t);
      if (is_half_type(dtype)) {
        HEARTH_ASSIGN_OR_RETURN(owned.back(), cast_tensor(*t, DataType::kFloat, ctx.allocator()));
      }
    }
    for (const auto& t : owned) xs.push_back(&t);
    auto bound = bind_equation(eq_, xs);
    if (!bound.ok()) return bound.status().with_context(node.describe());
    const EinsumBinding& b = bound.value();
    Shape out_shape;
    for (int l : b.out_labels) out_shape.push_back(b.size.at(l));
    const DataType ctype = xs.empty() ? DataType::kFloat : xs[0]->dtype();
    Tensor out(ctype, out_shape, ctx.allocator());
    HEARTH_RETURN_IF_ERROR(dispatch_arith(
        ctype,
        [&](auto tag) -> Status {
          using T = decltype(tag);
          if (out.numel() > 0 && !einsum_as_matmul<T>(b, xs, out, ctx.num_threads())) {
            HEARTH_RETURN_IF_ERROR(check_loop_work(b, out.numel(), node));
            einsum_loop<T>(b, xs, out);
          }
          return ok_status();
        },
        [&]() -> Status {
          return unimplemented(node.describe(), ": dtype ", dtype_name(ctype), " is not supported");
        }));
    return set_output_as(ctx, 0, out, dtype);
  }

 private:
  std::string equation_;
  EinsumEquation eq_;
};

// ---------------------------------------------------------------- Det

double det_lu(std::vector<double>& a, int64_t m) {
  double det = 1.0;
  for (int64_t c = 0; c < m; ++c) {
    int64_t p = c;
    for (int64_t r = c + 1; r < m; ++r)
      if (std::fabs(a[r * m + c]) > std::fabs(a[p * m + c])) p = r;
    if (a[p * m + c] == 0.0) return 0.0;
    if (p != c) {
      for (int64_t k = 0; k < m; ++k) std::swap(a[p * m + k], a[c * m + k]);
      det = -det;
    }
    const double piv = a[c * m + c];
    det *= piv;
    for (int64_t r = c + 1; r < m; ++r) {
      const double f = a[r * m + c] / piv;
      for (int64_t k = c + 1; k < m; ++k) a[r * m + k] -= f * a[c * m + k];
    }
  }
  return det;
}

class DetKernel : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* in = ctx.input(0);
    if (!in) return invalid_argument(node.describe(), ": missing input 'X'");
    const size_t rank = in->rank();
    if (rank < 2 || in->dim(rank - 1) != in->dim(rank - 2)) {
      return invalid_argument(node.describe(), ": input must be [..., M, M], got ", shape_str(in->shape()));
    }
    if (!dtype_is_float(in->dtype())) {
      return unimplemented(node.describe(), ": dtype ", dtype_name(in->dtype()), " is not supported");
    }
    HEARTH_ASSIGN_OR_RETURN(Tensor x, cast_tensor(*in, DataType::kDouble, ctx.allocator()));
    const int64_t m = in->dim(rank - 1);
    Shape out_shape(in->shape().begin(), in->shape().end() - 2);
    Tensor out(DataType::kDouble, out_shape, ctx.allocator());
    const double* src = x.data<double>();
    for (int64_t b = 0; b < out.numel(); ++b) {
      std::vector<double> a(src + b * m * m, src + (b + 1) * m * m);
      out.data<double>()[b] = det_lu(a, m);
    }
    return set_output_as(ctx, 0, out, in->dtype());
  }
};

}  // namespace

void register_einsum_kernels(KernelRegistry& r) {
  r.add({"Einsum", "", 12, kMaxOpset,
         {DataType::kFloat, DataType::kDouble, DataType::kFloat16, DataType::kInt32, DataType::kInt64},
         kernel_factory<EinsumKernel>()});
  r.add({"Det", "", 11, kMaxOpset, float_types(), kernel_factory<DetKernel>()});
}

}  // namespace hearth
