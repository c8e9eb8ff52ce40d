// Tests for RNN, GRU and LSTM against a plain per-element reference written
// here from the ONNX equations (dot products per gate, per batch row).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_int;
using testing::attr_string;
using testing::make_node;
using testing::random_tensor;
using testing::run_node;

Attribute attr_strings(std::vector<std::string> v) {
  Attribute a;
  a.type = Attribute::Type::kStrings;
  a.strings = std::move(v);
  return a;
}


double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

enum class Kind { kRnn, kGru, kLstm };

struct Problem {
  Kind kind = Kind::kLstm;
  int64_t S = 4, B = 3, I = 5, H = 6, dirs = 1;
  bool reverse = false, lbr = false;
  Tensor x, w, r, b, h0, c0, p;  // layout 0; b, h0, c0, p may be undefined
  std::vector<int64_t> lens;     // empty: all S
  std::function<double(double)> rnn_act = [](double v) { return std::tanh(v); };
};

struct RefOut {
  std::vector<double> y, yh, yc;  // [S, dirs, B, H] and [dirs, B, H]
};

double at(const Tensor& t, int64_t i) { return t.defined() ? t.data<float>()[i] : 0.0; }

// Pre-activation of gate row `row` (0..G*H) for one direction, input x_t and state h.
double gate(const Problem& pr, int64_t d, int64_t row, const float* x, const std::vector<double>& h, bool with_rec,
            bool rec_bias) {
  const int64_t G = pr.kind == Kind::kRnn ? 1 : pr.kind == Kind::kGru ? 3 : 4;
  double v = at(pr.b, d * 2 * G * pr.H + row) + (rec_bias ? at(pr.b, d * 2 * G * pr.H + G * pr.H + row) : 0.0);
  for (int64_t i = 0; i < pr.I; ++i) v += x[i] * at(pr.w, (d * G * pr.H + row) * pr.I + i);
  if (with_rec)
    for (int64_t k = 0; k < pr.H; ++k) v += h[k] * at(pr.r, (d * G * pr.H + row) * pr.H + k);
  return v;
}

RefOut reference(const Problem& pr) {
  const int64_t S = pr.S, B = pr.B, H = pr.H, D = pr.dirs;
  RefOut out{std::vector<double>(S * D * B * H, 0.0), std::vector<double>(D * B * H), std::vector<double>(D * B * H)};
  for (int64_t d = 0; d < D; ++d) {
    const bool rev = D == 2 ? d == 1 : pr.reverse;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<double> h(H), c(H);
      for (int64_t j = 0; j < H; ++j) {
        h[j] = at(pr.h0, (d * B + b) * H + j);
        c[j] = at(pr.c0, (d * B + b) * H + j);
      }
      const int64_t len = pr.lens.empty() ? S : pr.lens[b];
      for (int64_t step = 0; step < len; ++step) {
        const int64_t t = rev ? len - 1 - step : step;
        const float* x = pr.x.data<float>() + (t * B + b) * pr.I;
        std::vector<double> hn(H), cn(H);
        for (int64_t j = 0; j < H; ++j) {
          if (pr.kind == Kind::kRnn) {
            hn[j] = pr.rnn_act(gate(pr, d, j, x, h, true, true));
          } else if (pr.kind == Kind::kLstm) {
            auto peep = [&](int64_t k) { return at(pr.p, d * 3 * H + k * H + j); };
            const double i = sigmoid(gate(pr, d, j, x, h, true, true) + peep(0) * c[j]);
            const double f = sigmoid(gate(pr, d, 2 * H + j, x, h, true, true) + peep(2) * c[j]);
            cn[j] = f * c[j] + i * std::tanh(gate(pr, d, 3 * H + j, x, h, true, true));
            const double o = sigmoid(gate(pr, d, H + j, x, h, true, true) + peep(1) * cn[j]);
            hn[j] = o * std::tanh(cn[j]);
          }
        }
        if (pr.kind == Kind::kGru) {
          std::vector<double> z(H), rr(H), rh(H);
          for (int64_t j = 0; j < H; ++j) {
            z[j] = sigmoid(gate(pr, d, j, x, h, true, true));
            rr[j] = sigmoid(gate(pr, d, H + j, x, h, true, true));
            rh[j] = rr[j] * h[j];
          }
          for (int64_t j = 0; j < H; ++j) {
            double pre;
            if (pr.lbr) {
              const double hr = gate(pr, d, 2 * H + j, x, h, true, true) - gate(pr, d, 2 * H + j, x, h, false, false);
              pre = gate(pr, d, 2 * H + j, x, h, false, false) + rr[j] * hr;
            } else {
              pre = gate(pr, d, 2 * H + j, x, rh, true, true);
            }
            hn[j] = (1 - z[j]) * std::tanh(pre) + z[j] * h[j];
          }
        }
        h = hn;
        c = cn;
        for (int64_t j = 0; j < H; ++j) out.y[((t * D + d) * B + b) * H + j] = h[j];
      }
      for (int64_t j = 0; j < H; ++j) {
        out.yh[(d * B + b) * H + j] = h[j];
        out.yc[(d * B + b) * H + j] = c[j];
      }
    }
  }
  return out;
}

void fill_problem(Problem& pr, std::mt19937& rng, bool optional_inputs) {
  const int64_t G = pr.kind == Kind::kRnn ? 1 : pr.kind == Kind::kGru ? 3 : 4;
  pr.x = random_tensor({pr.S, pr.B, pr.I}, rng, -0.8f, 0.8f);
  pr.w = random_tensor({pr.dirs, G * pr.H, pr.I}, rng, -0.8f, 0.8f);
  pr.r = random_tensor({pr.dirs, G * pr.H, pr.H}, rng, -0.8f, 0.8f);
  if (!optional_inputs) return;
  pr.b = random_tensor({pr.dirs, 2 * G * pr.H}, rng, -0.8f, 0.8f);
  pr.h0 = random_tensor({pr.dirs, pr.B, pr.H}, rng, -0.8f, 0.8f);
  if (pr.kind == Kind::kLstm) {
    pr.c0 = random_tensor({pr.dirs, pr.B, pr.H}, rng, -0.8f, 0.8f);
    pr.p = random_tensor({pr.dirs, 3 * pr.H}, rng, -0.8f, 0.8f);
  }
}

std::vector<Tensor> node_inputs(const Problem& pr) {
  Tensor lens;
  if (!pr.lens.empty()) {
    std::vector<int32_t> v(pr.lens.begin(), pr.lens.end());
    lens = Tensor::from_vector<int32_t>(v, {pr.B});
  }
  std::vector<Tensor> in = {pr.x, pr.w, pr.r, pr.b, lens, pr.h0};
  if (pr.kind == Kind::kLstm) {
    in.push_back(pr.c0);
    in.push_back(pr.p);
  }
  while (!in.back().defined()) in.pop_back();
  return in;
}

const char* op_name(Kind k) { return k == Kind::kRnn ? "RNN" : k == Kind::kGru ? "GRU" : "LSTM"; }

void expect_close(const Tensor& got, const std::vector<double>& want) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got.data<float>()[i], want[i], 1e-4) << "element " << i;
}

void run_and_compare(const Problem& pr, std::map<std::string, Attribute> attrs = {}) {
  attrs["hidden_size"] = attr_int(pr.H);
  if (pr.dirs == 2) attrs["direction"] = attr_string("bidirectional");
  if (pr.reverse) attrs["direction"] = attr_string("reverse");
  if (pr.lbr) attrs["linear_before_reset"] = attr_int(1);
  const bool lstm = pr.kind == Kind::kLstm;
  auto in = node_inputs(pr);
  auto out = run_node(make_node(op_name(pr.kind), in.size(), lstm ? 3 : 2, attrs), in, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  RefOut ref = reference(pr);
  EXPECT_EQ((*out)[0].shape(), (Shape{pr.S, pr.dirs, pr.B, pr.H}));
  expect_close((*out)[0], ref.y);
  expect_close((*out)[1], ref.yh);
  if (lstm) expect_close((*out)[2], ref.yc);
}

TEST(RnnKernel, lstm_bidirectional_peepholes_and_sequence_lens) {
  std::mt19937 rng(1);
  Problem pr;
  pr.dirs = 2;
  fill_problem(pr, rng, true);
  pr.lens = {4, 2, 3};
  run_and_compare(pr);
}

TEST(RnnKernel, lstm_reverse_defaults) {
  std::mt19937 rng(2);
  Problem pr;
  pr.reverse = true;
  fill_problem(pr, rng, false);
  run_and_compare(pr);
}

TEST(RnnKernel, gru_both_reset_variants) {
  for (bool lbr : {false, true}) {
    std::mt19937 rng(3);
    Problem pr;
    pr.kind = Kind::kGru;
    pr.lbr = lbr;
    pr.dirs = 2;
    fill_problem(pr, rng, true);
    pr.lens = {1, 4, 3};
    run_and_compare(pr);
  }
}

TEST(RnnKernel, rnn_with_relu_activation) {
  std::mt19937 rng(4);
  Problem pr;
  pr.kind = Kind::kRnn;
  fill_problem(pr, rng, true);
  pr.rnn_act = [](double v) { return std::max(v, 0.0); };
  run_and_compare(pr, {{"activations", attr_strings({"Relu"})}});
}

TEST(RnnKernel, layout_1_transposes_batch_and_sequence) {
  std::mt19937 rng(5);
  Problem pr;
  pr.kind = Kind::kGru;
  fill_problem(pr, rng, true);
  RefOut ref = reference(pr);
  // X [S, B, I] -> [B, S, I]; initial_h [1, B, H] -> [B, 1, H].
  Tensor x1(DataType::kFloat, {pr.B, pr.S, pr.I});
  for (int64_t t = 0; t < pr.S; ++t)
    for (int64_t b = 0; b < pr.B; ++b)
      for (int64_t i = 0; i < pr.I; ++i)
        x1.data<float>()[(b * pr.S + t) * pr.I + i] = pr.x.data<float>()[(t * pr.B + b) * pr.I + i];
  auto h1 = pr.h0.reshaped({pr.B, 1, pr.H});
  ASSERT_TRUE(h1.ok());
  auto out = run_node(make_node("GRU", 6, 2, {{"hidden_size", attr_int(pr.H)}, {"layout", attr_int(1)}}),
                      {x1, pr.w, pr.r, pr.b, Tensor(), *h1}, 14);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ASSERT_EQ((*out)[0].shape(), (Shape{pr.B, pr.S, 1, pr.H}));
  ASSERT_EQ((*out)[1].shape(), (Shape{pr.B, 1, pr.H}));
  for (int64_t t = 0; t < pr.S; ++t)
    for (int64_t b = 0; b < pr.B; ++b)
      for (int64_t j = 0; j < pr.H; ++j)
        ASSERT_NEAR((*out)[0].data<float>()[(b * pr.S + t) * pr.H + j], ref.y[(t * pr.B + b) * pr.H + j], 1e-4);
  expect_close((*out)[1], ref.yh);
}

TEST(RnnKernel, double_matches_float) {
  std::mt19937 rng(6);
  Problem pr;
  fill_problem(pr, rng, true);
  auto in = node_inputs(pr);
  std::vector<Tensor> din;
  for (const Tensor& t : in) {
    if (!t.defined() || t.dtype() != DataType::kFloat) {
      din.push_back(t);
      continue;
    }
    auto d = cast_tensor(t, DataType::kDouble);
    ASSERT_TRUE(d.ok());
    din.push_back(*d);
  }
  auto node = make_node("LSTM", in.size(), 2, {{"hidden_size", attr_int(pr.H)}});
  auto f = run_node(node, in, 13);
  auto d = run_node(node, din, 13);
  ASSERT_TRUE(f.ok() && d.ok());
  ASSERT_EQ((*d)[1].dtype(), DataType::kDouble);
  for (int64_t i = 0; i < (*f)[1].numel(); ++i)
    EXPECT_NEAR((*f)[1].data<float>()[i], (*d)[1].data<double>()[i], 1e-5);
}

TEST(RnnKernel, rejects_bad_inputs) {
  std::mt19937 rng(7);
  Problem pr;
  fill_problem(pr, rng, false);
  auto bad_w = run_node(make_node("LSTM", 3, 2, {{"hidden_size", attr_int(pr.H + 1)}}), {pr.x, pr.w, pr.r}, 13);
  EXPECT_EQ(bad_w.status().code(), StatusCode::kInvalidArgument);
  auto bad_act = run_node(make_node("LSTM", 3, 2, {{"activations", attr_strings({"Sigmoid", "Nope", "Tanh"})}}),
                          {pr.x, pr.w, pr.r}, 13);
  EXPECT_EQ(bad_act.status().code(), StatusCode::kInvalidArgument);
  Tensor lens = Tensor::from_vector<int32_t>({1, 9, 2}, {3});
  auto bad_len = run_node(make_node("LSTM", 5, 2), {pr.x, pr.w, pr.r, Tensor(), lens}, 13);
  EXPECT_EQ(bad_len.status().code(), StatusCode::kInvalidArgument);
  auto bad_dir = run_node(make_node("RNN", 3, 2, {{"direction", attr_string("sideways")}}), {pr.x, pr.w, pr.r}, 13);
  EXPECT_EQ(bad_dir.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hearth
