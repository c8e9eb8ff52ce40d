// Shared pieces of the recurrent kernels (rnn.cc, rnn_cells.cc): activation
// functions, the per-direction configuration, and the time loop entry point.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "graph/graph.h"

namespace hearth {

enum class RnnKind { kRnn, kGru, kLstm };

// Gates per cell: RNN 1, GRU 3 (z, r, h), LSTM 4 (i, o, f, c).
inline int64_t rnn_gate_count(RnnKind k) { return k == RnnKind::kRnn ? 1 : k == RnnKind::kGru ? 3 : 4; }
// Activation functions per direction: RNN 1 (f), GRU 2 (f, g), LSTM 3 (f, g, h).
inline int64_t rnn_activation_count(RnnKind k) { return k == RnnKind::kRnn ? 1 : k == RnnKind::kGru ? 2 : 3; }

// One of the activation functions the ONNX recurrent ops accept.
struct RnnActivation {
  enum class Fn { kRelu, kTanh, kSigmoid, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh, kHardSigmoid, kElu,
                  kSoftsign, kSoftplus };
  Fn fn = Fn::kTanh;
  float alpha = 0.0f;
  float beta = 0.0f;
};

// Reads activations / activation_alpha / activation_beta for `dirs` directions
// (defaults: Tanh for RNN, Sigmoid+Tanh for GRU, Sigmoid+Tanh+Tanh for LSTM).
// Alphas and betas are consumed in order by the functions that take them.
// Called from init(): messages carry no node name (the factory adds it).
Result<std::vector<RnnActivation>> parse_rnn_activations(const Node& node, RnnKind kind, int64_t dirs);

// Applies `a` to x[0..n) in place; when clip > 0, inputs are first clamped to [-clip, clip].
template <typename T>
void apply_rnn_activation(const RnnActivation& a, T* x, int64_t n, float clip);

// Sizes and options shared by every direction of one run.
struct RnnConfig {
  RnnKind kind = RnnKind::kRnn;
  int64_t seq = 0, batch = 0, input = 0, hidden = 0;
  float clip = 0.0f;  // 0: no clipping
  bool linear_before_reset = false;  // GRU
  bool input_forget = false;         // LSTM
};

// One direction's operands (layout 0, compute type T). Optional ones may be null.
template <typename T>
struct RnnDirectionIO {
  bool reverse = false;
  const T* x = nullptr;   // [seq, batch, input]
  const T* w = nullptr;   // [gates * hidden, input]
  const T* r = nullptr;   // [gates * hidden, hidden]
  const T* b = nullptr;   // [2 * gates * hidden]: Wb then Rb
  const T* p = nullptr;   // [3 * hidden] peepholes i, o, f (LSTM)
  const T* h0 = nullptr;  // [batch, hidden]
  const T* c0 = nullptr;  // [batch, hidden] (LSTM)
  const int64_t* seq_lens = nullptr;  // [batch]; steps t >= len are skipped
  const RnnActivation* acts = nullptr;  // rnn_activation_count(kind) entries
  T* y = nullptr;             // Y for step t at y + t * y_step_stride as [batch, hidden]; may be null
  int64_t y_step_stride = 0;
  T* yh = nullptr;            // final hidden state [batch, hidden]
  T* yc = nullptr;            // final cell state [batch, hidden] (LSTM); may be null
};

// Runs the whole sequence for one direction.
template <typename T>
Status run_rnn_direction(const RnnConfig& config, const RnnDirectionIO<T>& io);

}  // namespace hearth
