// The time loop of RNN, GRU and LSTM for one direction: one GEMM for the
// input projection of every step, then per step one GEMM for the recurrence
// (two for GRU without linear_before_reset) and the element-wise cell math.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include "kernels/matmul_dnnl.h"
#include "kernels/rnn_common.h"

namespace hearth {

namespace {

using Fn = RnnActivation::Fn;

struct ActivationSpec {
  const char* name;
  Fn fn;
  int uses;  // 0: none, 1: alpha, 2: alpha and beta
  float alpha, beta;
};

constexpr ActivationSpec kSpecs[] = {
    {"relu", Fn::kRelu, 0, 0, 0},
    {"tanh", Fn::kTanh, 0, 0, 0},
    {"sigmoid", Fn::kSigmoid, 0, 0, 0},
    {"affine", Fn::kAffine, 2, 1.0f, 0.0f},
    {"leakyrelu", Fn::kLeakyRelu, 1, 0.01f, 0},
    {"thresholdedrelu", Fn::kThresholdedRelu, 1, 1.0f, 0},
    {"scaledtanh", Fn::kScaledTanh, 2, 1.0f, 1.0f},
    {"hardsigmoid", Fn::kHardSigmoid, 2, 0.2f, 0.5f},
    {"elu", Fn::kElu, 1, 1.0f, 0},
    {"softsign", Fn::kSoftsign, 0, 0, 0},
    {"softplus", Fn::kSoftplus, 0, 0, 0},
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// C[M, N] = A[M, K] * B[N, K]^T + beta * C (row-major, leading dims given).
template <typename T>
Status gemm_abt(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
                int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    return sgemm(false, true, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  } else {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        T acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += A[m * lda + k] * B[n * ldb + k];
        C[m * ldc + n] = acc + (beta == T(0) ? T(0) : beta * C[m * ldc + n]);
      }
    }
    return ok_status();
  }
}

bool active(const int64_t* seq_lens, int64_t b, int64_t t) { return !seq_lens || t < seq_lens[b]; }

// Scratch and state of one direction's loop.
template <typename T>
struct LoopState {
  std::vector<T> xw;     // [seq, batch, gates * hidden] input projections + biases
  std::vector<T> hr;     // [batch, gates * hidden] recurrent projections of this step
  std::vector<T> gates;  // [batch, gates * hidden] pre-activations / activations
  std::vector<T> h, h_new, c, c_new, rh;  // [batch, hidden]
};

template <typename T>
void add_biases(const RnnConfig& cfg, const T* b, std::vector<T>& xw) {
  if (!b) return;
  const int64_t H = cfg.hidden, GH = rnn_gate_count(cfg.kind) * H;
  std::vector<T> bias(b, b + GH);
  for (int64_t j = 0; j < GH; ++j) {
    const bool rb_inside = cfg.kind == RnnKind::kGru && cfg.linear_before_reset && j >= 2 * H;
    if (!rb_inside) bias[j] += b[GH + j];
  }
  const int64_t rows = static_cast<int64_t>(xw.size()) / GH;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < GH; ++j) xw[r * GH + j] += bias[j];
}

template <typename T>
Status rnn_step(const RnnConfig& cfg, const RnnDirectionIO<T>& io, const T* xw, LoopState<T>& s) {
  const int64_t B = cfg.batch, H = cfg.hidden;
  HEARTH_RETURN_IF_ERROR(gemm_abt<T>(B, H, H, s.h.data(), H, io.r, H, T(0), s.hr.data(), H));
  for (int64_t i = 0; i < B * H; ++i) s.h_new[i] = xw[i] + s.hr[i];
  apply_rnn_activation(io.acts[0], s.h_new.data(), B * H, cfg.clip);
  return ok_status();
}

template <typename T>
Status gru_step(const RnnConfig& cfg, const RnnDirectionIO<T>& io, const T* xw, LoopState<T>& s) {
  const int64_t B = cfg.batch, H = cfg.hidden, GH = 3 * H;
  const bool lbr = cfg.linear_before_reset;
  // Recurrent projections: all three gates with linear_before_reset, else z and r only.
  HEARTH_RETURN_IF_ERROR(gemm_abt<T>(B, lbr ? GH : 2 * H, H, s.h.data(), H, io.r, H, T(0), s.hr.data(), GH));
  for (int64_t b = 0; b < B; ++b) {
    T* g = s.gates.data() + b * GH;
    for (int64_t j = 0; j < 2 * H; ++j) g[j] = xw[b * GH + j] + s.hr[b * GH + j];
    apply_rnn_activation(io.acts[0], g, 2 * H, cfg.clip);  // z, r
    if (!lbr)
      for (int64_t j = 0; j < H; ++j) s.rh[b * H + j] = g[H + j] * s.h[b * H + j];
  }
  if (!lbr) {
    HEARTH_RETURN_IF_ERROR(
        gemm_abt<T>(B, H, H, s.rh.data(), H, io.r + 2 * H * H, H, T(0), s.hr.data() + 2 * H, GH));
  }
  const T* rbh = io.b ? io.b + GH + 2 * H : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    T* g = s.gates.data() + b * GH;
    const T* hr = s.hr.data() + b * GH + 2 * H;
    for (int64_t j = 0; j < H; ++j) {
      const T rec = lbr ? g[H + j] * (hr[j] + (rbh ? rbh[j] : T(0))) : hr[j];
      g[2 * H + j] = xw[b * GH + 2 * H + j] + rec;
    }
    apply_rnn_activation(io.acts[1], g + 2 * H, H, cfg.clip);
    for (int64_t j = 0; j < H; ++j) {
      const T z = g[j];
      s.h_new[b * H + j] = (T(1) - z) * g[2 * H + j] + z * s.h[b * H + j];
    }
  }
  return ok_status();
}

template <typename T>
Status lstm_step(const RnnConfig& cfg, const RnnDirectionIO<T>& io, const T* xw, LoopState<T>& s) {
  const int64_t B = cfg.batch, H = cfg.hidden, GH = 4 * H;
  HEARTH_RETURN_IF_ERROR(gemm_abt<T>(B, GH, H, s.h.data(), H, io.r, H, T(0), s.hr.data(), GH));
  const T* pi = io.p;
  const T* po = io.p ? io.p + H : nullptr;
  const T* pf = io.p ? io.p + 2 * H : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    T* g = s.gates.data() + b * GH;
    for (int64_t j = 0; j < GH; ++j) g[j] = xw[b * GH + j] + s.hr[b * GH + j];
    T *gi = g, *go = g + H, *gf = g + 2 * H, *gc = g + 3 * H;
    const T* c = s.c.data() + b * H;
    T* cn = s.c_new.data() + b * H;
    if (pi)
      for (int64_t j = 0; j < H; ++j) {
        gi[j] += pi[j] * c[j];
        gf[j] += pf[j] * c[j];
      }
    apply_rnn_activation(io.acts[0], gi, H, cfg.clip);
    if (cfg.input_forget) {
      for (int64_t j = 0; j < H; ++j) gf[j] = T(1) - gi[j];
    } else {
      apply_rnn_activation(io.acts[0], gf, H, cfg.clip);
    }
    apply_rnn_activation(io.acts[1], gc, H, cfg.clip);
    for (int64_t j = 0; j < H; ++j) cn[j] = gf[j] * c[j] + gi[j] * gc[j];
    if (po)
      for (int64_t j = 0; j < H; ++j) go[j] += po[j] * cn[j];
    apply_rnn_activation(io.acts[0], go, H, cfg.clip);
    T* hn = s.h_new.data() + b * H;
    std::copy(cn, cn + H, hn);
    apply_rnn_activation(io.acts[2], hn, H, 0.0f);
    for (int64_t j = 0; j < H; ++j) hn[j] *= go[j];
  }
  return ok_status();
}

// Keeps the old state for batch rows past their sequence length, writes Y, advances.
template <typename T>
void finish_step(const RnnConfig& cfg, const RnnDirectionIO<T>& io, int64_t t, LoopState<T>& s) {
  const int64_t B = cfg.batch, H = cfg.hidden;
  const bool lstm = cfg.kind == RnnKind::kLstm;
  T* y = io.y ? io.y + t * io.y_step_stride : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    const bool on = active(io.seq_lens, b, t);
    if (!on) {
      std::copy_n(s.h.data() + b * H, H, s.h_new.data() + b * H);
      if (lstm) std::copy_n(s.c.data() + b * H, H, s.c_new.data() + b * H);
    }
    if (y) {
      if (on) {
        std::copy_n(s.h_new.data() + b * H, H, y + b * H);
      } else {
        std::fill_n(y + b * H, H, T(0));
      }
    }
  }
  s.h.swap(s.h_new);
  if (lstm) s.c.swap(s.c_new);
}

}  // namespace

Result<std::vector<RnnActivation>> parse_rnn_activations(const Node& node, RnnKind kind, int64_t dirs) {
  const int64_t per_dir = rnn_activation_count(kind);
  std::vector<std::string> names;
  if (const Attribute* a = node.attr("activations")) names = a->strings;
  if (names.empty()) {
    static const char* kDefaults[] = {"Sigmoid", "Tanh", "Tanh"};
    for (int64_t i = 0; i < per_dir; ++i) names.push_back(kind == RnnKind::kRnn ? "Tanh" : kDefaults[i]);
  }
  if (static_cast<int64_t>(names.size()) == per_dir && dirs == 2) {
    const std::vector<std::string> one = names;
    names.insert(names.end(), one.begin(), one.end());
  }
  if (static_cast<int64_t>(names.size()) != per_dir * dirs) {
    return invalid_argument("expected ", per_dir * dirs, " activations, got ", names.size());
  }
  const std::vector<float> alphas = node.attr_floats("activation_alpha");
  const std::vector<float> betas = node.attr_floats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  std::vector<RnnActivation> out;
  for (const std::string& name : names) {
    const ActivationSpec* spec = nullptr;
    for (const auto& s : kSpecs)
      if (lower(name) == s.name) spec = &s;
    if (!spec) return invalid_argument("unknown activation '", name, "'");
    RnnActivation a{spec->fn, spec->alpha, spec->beta};
    if (spec->uses >= 1 && next_alpha < alphas.size()) a.alpha = alphas[next_alpha++];
    if (spec->uses >= 2 && next_beta < betas.size()) a.beta = betas[next_beta++];
    out.push_back(a);
  }
  return out;
}

template <typename T>
void apply_rnn_activation(const RnnActivation& a, T* x, int64_t n, float clip) {
  if (clip > 0.0f) {
    const T c = static_cast<T>(clip);
    for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(x[i], -c), c);
  }
  const T al = static_cast<T>(a.alpha), be = static_cast<T>(a.beta);
  switch (a.fn) {
    case Fn::kRelu: for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], T(0)); break;
    case Fn::kTanh: for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]); break;
    case Fn::kSigmoid: for (int64_t i = 0; i < n; ++i) x[i] = T(1) / (T(1) + std::exp(-x[i])); break;
    case Fn::kAffine: for (int64_t i = 0; i < n; ++i) x[i] = al * x[i] + be; break;
    case Fn::kLeakyRelu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : al * x[i]; break;
    case Fn::kThresholdedRelu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= al ? x[i] : T(0); break;
    case Fn::kScaledTanh: for (int64_t i = 0; i < n; ++i) x[i] = al * std::tanh(be * x[i]); break;
    case Fn::kHardSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(al * x[i] + be, T(0)), T(1));
      break;
    case Fn::kElu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : al * (std::exp(x[i]) - T(1)); break;
    case Fn::kSoftsign: for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (T(1) + std::abs(x[i])); break;
    case Fn::kSoftplus: for (int64_t i = 0; i < n; ++i) x[i] = std::log1p(std::exp(x[i])); break;
  }
}

template <typename T>
Status run_rnn_direction(const RnnConfig& cfg, const RnnDirectionIO<T>& io) {
  const int64_t B = cfg.batch, H = cfg.hidden, GH = rnn_gate_count(cfg.kind) * H;
  LoopState<T> s;
  s.xw.assign(static_cast<size_t>(cfg.seq * B * GH), T(0));
  s.hr.assign(static_cast<size_t>(B * GH), T(0));
  s.gates.assign(static_cast<size_t>(B * GH), T(0));
  s.h.assign(static_cast<size_t>(B * H), T(0));
  s.h_new = s.c = s.c_new = s.rh = s.h;
  if (io.h0) std::copy_n(io.h0, B * H, s.h.data());
  if (io.c0) std::copy_n(io.c0, B * H, s.c.data());
  HEARTH_RETURN_IF_ERROR(gemm_abt<T>(cfg.seq * B, GH, cfg.input, io.x, cfg.input, io.w, cfg.input, T(0), s.xw.data(), GH));
  add_biases(cfg, io.b, s.xw);
  for (int64_t step = 0; step < cfg.seq && B > 0; ++step) {  // an empty batch has no steps to run
    const int64_t t = io.reverse ? cfg.seq - 1 - step : step;
    const T* xw = s.xw.data() + t * B * GH;
    switch (cfg.kind) {
      case RnnKind::kRnn: HEARTH_RETURN_IF_ERROR(rnn_step(cfg, io, xw, s)); break;
      case RnnKind::kGru: HEARTH_RETURN_IF_ERROR(gru_step(cfg, io, xw, s)); break;
      case RnnKind::kLstm: HEARTH_RETURN_IF_ERROR(lstm_step(cfg, io, xw, s)); break;
    }
    finish_step(cfg, io, t, s);
  }
  std::copy_n(s.h.data(), B * H, io.yh);
  if (io.yc) std::copy_n(s.c.data(), B * H, io.yc);
  return ok_status();
}

template void apply_rnn_activation<float>(const RnnActivation&, float*, int64_t, float);
template void apply_rnn_activation<double>(const RnnActivation&, double*, int64_t, float);
template Status run_rnn_direction<float>(const RnnConfig&, const RnnDirectionIO<float>&);
template Status run_rnn_direction<double>(const RnnConfig&, const RnnDirectionIO<double>&);

}  // namespace hearth
