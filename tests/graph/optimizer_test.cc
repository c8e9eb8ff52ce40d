// Graph rewrites (graph/optimizer.h) keep results: every fused model is run
// with and without optimization on the same input and compared.
#include "graph/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "graph/model_builder.h"
#include "runtime/session.h"
#include "runtime/session_pair.h"

namespace hearth {
namespace {
using testing::add_float_initializer;
using testing::add_node;
using testing::set_tensor_type;

using testing::random_values;
using testing::SessionPair;

// x[1,4,6,6] -> Conv(8 out, 3x3, pad 1) -> tail nodes added by `tail`; output "y".
template <typename Tail>
onnx::ModelProto conv_model(Tail tail) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {1, 4, 6, 6});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {1, 8, 6, 6});
  add_float_initializer(g, "W", {8, 4, 3, 3}, random_values(8 * 4 * 9, 1));
  add_float_initializer(g, "B", {8}, random_values(8, 2));
  auto* conv = add_node(g, "Conv", {"x", "W", "B"}, {"c"}, "conv");
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  tail(g);
  return m;
}

struct Compared {
  size_t optimized_nodes = 0;
  double max_abs_diff = 0;
};

// The fusion passes alone: the blocked layout (nchwc_test.cc) would add reorders.
Compared run_both(const onnx::ModelProto& m) {
  std::string bytes = m.SerializeAsString();
  SessionOptions plain;
  plain.optimize = false;
  SessionOptions fused;
  fused.blocked_layout = false;
  fused.profile = true;
  auto a = Session::load_bytes(bytes.data(), bytes.size(), "", plain);
  auto b = Session::load_bytes(bytes.data(), bytes.size(), "", fused);
  EXPECT_TRUE(a.ok() && b.ok());
  Tensor x = Tensor::from_vector<float>(random_values(4 * 36, 3, -2.0f, 2.0f), {1, 4, 6, 6});
  auto ya = (*a)->run({{"x", x}});
  auto yb = (*b)->run({{"x", x}});
  EXPECT_TRUE(ya.ok() && yb.ok());
  Compared c;
  c.optimized_nodes = (*b)->node_profile().size();
  for (int64_t i = 0; i < (*ya)[0].numel(); ++i)
    c.max_abs_diff = std::max(c.max_abs_diff, std::fabs(double((*ya)[0].data<float>()[i]) - (*yb)[0].data<float>()[i]));
  return c;
}

// The optimizer against no optimization.
SessionPair run_plain_and_optimized(const onnx::ModelProto& m, const testing::Feeds& in) {
  SessionOptions plain;
  plain.optimize = false;
  return testing::run_session_pair(m, in, plain, SessionOptions{});
}

void expect_same(const SessionPair& o) {
  ASSERT_EQ(o.reference.size(), o.tested.size());
  for (size_t k = 0; k < o.reference.size(); ++k) {
    ASSERT_EQ(o.reference[k].shape(), o.tested[k].shape()) << "output " << k;
    ASSERT_EQ(o.reference[k].dtype(), o.tested[k].dtype());
    auto x = tensor_to_doubles(o.reference[k]).value(), y = tensor_to_doubles(o.tested[k]).value();
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], y[i], 1e-5) << "output " << k << " at " << i;
  }
}

onnx::ModelProto small_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  m.mutable_graph()->set_name("g");
  return m;
}

void set_perm(onnx::NodeProto* n, std::vector<int64_t> p) {
  auto* a = n->add_attribute();
  a->set_name("perm");
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : p) a->add_ints(v);
}

TEST(Optimizer, folds_batchnorm_and_fuses_relu) {
  auto m = conv_model([](onnx::GraphProto* g) {
    add_float_initializer(g, "gamma", {8}, random_values(8, 4, 0.5f, 1.5f));
    add_float_initializer(g, "beta", {8}, random_values(8, 5));
    add_float_initializer(g, "mean", {8}, random_values(8, 6));
    add_float_initializer(g, "var", {8}, random_values(8, 7, 0.5f, 2.0f));
    add_node(g, "BatchNormalization", {"c", "gamma", "beta", "mean", "var"}, {"bn"}, "bn");
    add_node(g, "Relu", {"bn"}, {"y"}, "relu");
  });
  Compared c = run_both(m);
  EXPECT_EQ(c.optimized_nodes, 1u);
  EXPECT_LT(c.max_abs_diff, 1e-4);
}

TEST(Optimizer, fuses_sigmoid_mul_as_swish) {
  auto m = conv_model([](onnx::GraphProto* g) {
    add_node(g, "Sigmoid", {"c"}, {"s"}, "sig");
    add_node(g, "Mul", {"s", "c"}, {"y"}, "mul");
  });
  Compared c = run_both(m);
  EXPECT_EQ(c.optimized_nodes, 1u);
  EXPECT_LT(c.max_abs_diff, 1e-4);
}

TEST(Optimizer, leaves_conv_alone_when_its_output_has_other_readers) {
  auto m = conv_model([](onnx::GraphProto* g) {
    add_node(g, "Relu", {"c"}, {"r"}, "relu");
    add_node(g, "Add", {"r", "c"}, {"y"}, "add");  // c is read twice
  });
  Compared c = run_both(m);
  EXPECT_EQ(c.optimized_nodes, 3u);
  EXPECT_LT(c.max_abs_diff, 1e-6);
}



// x[2,5,16] -> MatMul W[16,32] -> Add bias -> GELU (erf form, torch or Hugging Face order) -> y.
onnx::ModelProto matmul_gelu_model(bool hf_order, bool with_bias) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {2, 5, 16});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {2, 5, 32});
  add_float_initializer(g, "W", {16, 32}, random_values(16 * 32, 21));
  add_float_initializer(g, "bias", {32}, random_values(32, 22));
  add_float_initializer(g, "sqrt2", {}, {1.4142135f});
  add_float_initializer(g, "one", {}, {1.0f});
  add_float_initializer(g, "half", {}, {0.5f});
  add_node(g, "MatMul", {"x", "W"}, {"mm"}, "matmul");
  std::string v = "mm";
  if (with_bias) {
    add_node(g, "Add", {"bias", "mm"}, {"biased"}, "add_bias");
    v = "biased";
  }
  add_node(g, "Div", {v, "sqrt2"}, {"d"}, "div");
  add_node(g, "Erf", {"d"}, {"e"}, "erf");
  add_node(g, "Add", {"e", "one"}, {"a"}, "add_one");
  if (hf_order) {
    add_node(g, "Mul", {v, "half"}, {"h"}, "mul_half");
    add_node(g, "Mul", {"h", "a"}, {"y"}, "mul");
  } else {
    add_node(g, "Mul", {v, "a"}, {"m"}, "mul");
    add_node(g, "Mul", {"m", "half"}, {"y"}, "mul_half");
  }
  return m;
}

TEST(Optimizer, fuses_matmul_bias_and_gelu) {
  for (bool hf : {false, true}) {
    for (bool bias : {false, true}) {
      SessionPair o = run_plain_and_optimized(
          matmul_gelu_model(hf, bias),
          {{"x", Tensor::from_vector<float>(random_values(2 * 5 * 16, 23, -2.0f, 2.0f), {2, 5, 16})}});
      expect_same(o);
      ASSERT_EQ(o.tested[0].shape(), (Shape{2, 5, 32}));
      ASSERT_EQ(o.tested_ops.size(), 1u) << "hf " << hf << " bias " << bias;
      EXPECT_EQ(o.tested_ops["FusedMatMul"], 1);
    }
  }
}

TEST(Optimizer, leaves_gelu_alone_when_a_part_has_other_readers) {
  auto m = matmul_gelu_model(false, true);
  set_tensor_type(m.mutable_graph()->add_output(), "e", onnx::TensorProto::FLOAT, {2, 5, 32});  // erf is read
  SessionPair o = run_plain_and_optimized(m, {{"x", Tensor::from_vector<float>(random_values(2 * 5 * 16, 24), {2, 5, 16})}});
  expect_same(o);
  int nodes = 0;
  for (const auto& [op, n] : o.tested_ops) nodes += n;
  EXPECT_EQ(nodes, 6) << "MatMul+bias fused, the five GELU nodes kept";
}

// Attention scores as PyTorch exports them: MatMul(Transpose(q) / 2, Transpose(k)), plus a
// MatMul of two Transposes that move the unit-stride dim out of the matrix (not absorbed).
TEST(Optimizer, absorbs_scales_and_transposes_into_matmul) {
  auto m = small_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "q", onnx::TensorProto::FLOAT, {3, 4, 6});
  set_tensor_type(g->add_input(), "k", onnx::TensorProto::FLOAT, {3, 4, 6});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {4, 3, 3});
  set_tensor_type(g->add_output(), "z", onnx::TensorProto::FLOAT, {6, 3, 3});
  add_float_initializer(g, "two", {}, {2.0f});
  set_perm(add_node(g, "Transpose", {"q"}, {"qt"}, "tq"), {1, 0, 2});  // [4,3,6]
  add_node(g, "Div", {"qt", "two"}, {"qs"}, "scale");
  set_perm(add_node(g, "Transpose", {"k"}, {"kt"}, "tk"), {1, 2, 0});  // [4,6,3]
  add_node(g, "MatMul", {"qs", "kt"}, {"y"}, "scores");
  set_perm(add_node(g, "Transpose", {"q"}, {"qz"}, "tz"), {2, 0, 1});  // [6,3,4]: last dim moved to the batch
  set_perm(add_node(g, "Transpose", {"k"}, {"kz"}, "tkz"), {2, 1, 0});  // [6,4,3]
  add_node(g, "MatMul", {"qz", "kz"}, {"z"}, "other");
  SessionPair o = run_plain_and_optimized(m, {{"q", Tensor::from_vector<float>(random_values(72, 31), {3, 4, 6})},
                                              {"k", Tensor::from_vector<float>(random_values(72, 32), {3, 4, 6})}});
  expect_same(o);
  EXPECT_EQ(o.tested_ops["FusedMatMul"], 1);
  EXPECT_EQ(o.tested_ops["MatMul"], 1);
  EXPECT_EQ(o.tested_ops["Div"], 0);
  EXPECT_EQ(o.tested_ops["Transpose"], 2) << "[2,0,1] and [2,1,0] leave no unit stride among the last two dims";
}

// Only float32 MatMuls become FusedMatMul: a double attention product keeps its Transpose.
TEST(Optimizer, leaves_non_float_matmul_alone) {
  auto m = small_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "q", onnx::TensorProto::DOUBLE, {2, 3, 4});
  set_tensor_type(g->add_input(), "k", onnx::TensorProto::DOUBLE, {2, 3, 4});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::DOUBLE, {2, 3, 3});
  set_perm(add_node(g, "Transpose", {"k"}, {"kt"}, "t"), {0, 2, 1});
  add_node(g, "MatMul", {"q", "kt"}, {"y"}, "mm");
  std::vector<double> qv(24), kv(24);
  for (int i = 0; i < 24; ++i) qv[i] = 0.1 * i, kv[i] = 1.0 - 0.05 * i;
  SessionPair o = run_plain_and_optimized(
      m, {{"q", Tensor::from_vector<double>(qv, {2, 3, 4})}, {"k", Tensor::from_vector<double>(kv, {2, 3, 4})}});
  expect_same(o);
  EXPECT_EQ(o.tested_ops["FusedMatMul"], 0);
}

// A scale that cancels out (alpha back at 1) must not take its node away from a MatMul left as is;
// a one-element constant of higher rank (which raises the output rank) is not a scale either.
TEST(Optimizer, matmul_scales_that_fold_to_nothing_or_change_rank) {
  auto m = small_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {3, 4});
  set_tensor_type(g->add_input(), "w", onnx::TensorProto::FLOAT, {4, 5});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {3, 5});
  set_tensor_type(g->add_output(), "z", onnx::TensorProto::FLOAT, {1, 3, 5});
  add_float_initializer(g, "half", {}, {0.5f});
  add_float_initializer(g, "two", {}, {2.0f});
  add_float_initializer(g, "c3", {1, 1, 1}, {3.0f});
  add_node(g, "Mul", {"x", "half"}, {"xs"}, "mx");
  add_node(g, "Mul", {"two", "w"}, {"ws"}, "mw");
  add_node(g, "MatMul", {"xs", "ws"}, {"y"}, "mm");
  add_node(g, "Mul", {"x", "c3"}, {"x3"}, "m3");
  add_node(g, "MatMul", {"x3", "w"}, {"z"}, "mm3");
  SessionPair o = run_plain_and_optimized(m, {{"x", Tensor::from_vector<float>(random_values(12, 41), {3, 4})},
                                          {"w", Tensor::from_vector<float>(random_values(20, 42), {4, 5})}});
  expect_same(o);
}

// torch.nn.GELU's (1 + erf) read elsewhere too: the GELU stays unfused, the model still loads.
TEST(Optimizer, gelu_with_a_shared_intermediate_stays) {
  auto m = matmul_gelu_model(false, true);
  set_tensor_type(m.mutable_graph()->add_output(), "a", onnx::TensorProto::FLOAT, {2, 5, 32});
  SessionPair o = run_plain_and_optimized(m, {{"x", Tensor::from_vector<float>(random_values(160, 43), {2, 5, 16})}});
  expect_same(o);
  EXPECT_EQ(o.tested_ops["Erf"], 1);
}



// nn.LayerNorm as exports before opset 17 spell it out (also valid at 17);
// optionally with d read a third time.
onnx::ModelProto spelled_out_layer_norm(int64_t opset, bool extra_reader) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(opset);
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {2, 5, 16});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {2, 5, 16});
  add_float_initializer(g, "two", {}, {2.0f});
  add_float_initializer(g, "eps", {}, {1e-5f});
  add_float_initializer(g, "gamma", {16}, random_values(16, 51, 0.5f, 1.5f));
  add_float_initializer(g, "beta", {16}, random_values(16, 52));
  auto mean = [&](const std::string& in, const std::string& out) {
    auto* n = add_node(g, "ReduceMean", {in}, {out}, out);
    auto* a = n->add_attribute();
    a->set_name("axes");
    a->set_type(onnx::AttributeProto::INTS);
    a->add_ints(-1);
  };
  mean("x", "m");
  add_node(g, "Sub", {"x", "m"}, {"d"}, "sub");
  add_node(g, "Pow", {"d", "two"}, {"p"}, "pow");
  mean("p", "v");
  add_node(g, "Add", {"v", "eps"}, {"e"}, "add_eps");
  add_node(g, "Sqrt", {"e"}, {"s"}, "sqrt");
  add_node(g, "Div", {"d", "s"}, {"n"}, "div");
  add_node(g, "Mul", {"n", "gamma"}, {"scaled"}, "mul");
  add_node(g, "Add", {"scaled", "beta"}, {"y"}, "add_beta");
  if (extra_reader) {
    set_tensor_type(g->add_output(), "d2", onnx::TensorProto::FLOAT, {2, 5, 16});
    add_node(g, "Neg", {"d"}, {"d2"}, "neg");
  }
  return m;
}

// x's last axis of size 1 with a 16-element gamma: Mul broadcasts the output up
// to 16; a LayerNormalization could not, so nothing is fused.
TEST(Optimizer, layer_norm_pattern_with_broadcasting_gamma_stays) {
  auto m = spelled_out_layer_norm(13, false);
  auto* in = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  in->mutable_dim(2)->set_dim_value(1);
  SessionPair o = run_plain_and_optimized(m, {{"x", Tensor::from_vector<float>(random_values(10, 54), {2, 5, 1})}});
  expect_same(o);
  EXPECT_EQ(o.tested_ops["LayerNormalization"], 0);
}

TEST(Optimizer, fuses_spelled_out_layer_norm) {
  for (int64_t opset : {13, 17}) {
    for (bool extra : {false, true}) {
      SessionPair o = run_plain_and_optimized(
          spelled_out_layer_norm(opset, extra), {{"x", Tensor::from_vector<float>(random_values(160, 53, -3.0f, 3.0f), {2, 5, 16})}});
      expect_same(o);
      if (!extra) {
        EXPECT_EQ(o.tested_ops.size(), 1u) << "opset " << opset;
        EXPECT_EQ(o.tested_ops["LayerNormalization"], 1) << "opset " << opset;
      } else {
        EXPECT_EQ(o.tested_ops["LayerNormalization"], 0) << "d is read elsewhere: nothing fused";
      }
    }
  }
}



// x[2,5,16] -> MatMul -> + bias -> GELU's tanh approximation, as nn.GELU(approximate="tanh")
// exports it (x * (x * x), torch order) or as Hugging Face's gelu_new does (Pow(x, 3), x * 0.5 first).
onnx::ModelProto matmul_gelu_tanh_model(bool hf, bool x_read_elsewhere) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(14);
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {2, 5, 16});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {2, 5, 32});
  add_float_initializer(g, "W", {16, 32}, random_values(16 * 32, 61));
  add_float_initializer(g, "bias", {32}, random_values(32, 62));
  add_float_initializer(g, "three", {}, {3.0f});
  add_float_initializer(g, "k1", {}, {0.044715f});
  add_float_initializer(g, "k2", {}, {0.7978845608f});
  add_float_initializer(g, "one", {}, {1.0f});
  add_float_initializer(g, "half", {}, {0.5f});
  add_node(g, "MatMul", {"x", "W"}, {"mm"}, "matmul");
  add_node(g, "Add", {"bias", "mm"}, {"v"}, "add_bias");
  if (hf) {
    add_node(g, "Pow", {"v", "three"}, {"cube"}, "pow");
  } else {
    add_node(g, "Mul", {"v", "v"}, {"sq"}, "sq");
    add_node(g, "Mul", {"v", "sq"}, {"cube"}, "cube");
  }
  add_node(g, "Mul", {"k1", "cube"}, {"t"}, "k1");
  add_node(g, "Add", {"v", "t"}, {"a"}, "inner");
  add_node(g, "Mul", {"k2", "a"}, {"u"}, "k2");
  add_node(g, "Tanh", {"u"}, {"h"}, "tanh");
  add_node(g, "Add", {"one", "h"}, {"o"}, "one_plus");
  if (hf) {
    add_node(g, "Mul", {"v", "half"}, {"hv"}, "half");
    add_node(g, "Mul", {"hv", "o"}, {"y"}, "out");
  } else {
    add_node(g, "Mul", {"v", "o"}, {"m"}, "times_x");
    add_node(g, "Mul", {"half", "m"}, {"y"}, "out");
  }
  if (x_read_elsewhere) {
    set_tensor_type(g->add_output(), "v", onnx::TensorProto::FLOAT, {2, 5, 32});
  }
  return m;
}

TEST(Optimizer, fuses_matmul_bias_and_gelu_tanh) {
  for (bool hf : {false, true}) {
    for (bool elsewhere : {false, true}) {
      SessionPair o = run_plain_and_optimized(
          matmul_gelu_tanh_model(hf, elsewhere),
          {{"x", Tensor::from_vector<float>(random_values(160, 63, -3.0f, 3.0f), {2, 5, 16})}});
      expect_same(o);
      EXPECT_EQ(o.tested_ops["Tanh"], elsewhere ? 1 : 0) << "hf " << hf << " elsewhere " << elsewhere;
      int nodes = 0;
      for (const auto& [op, n] : o.tested_ops) nodes += n;
      if (!elsewhere) {
        EXPECT_EQ(nodes, 1) << "hf " << hf << ": one FusedMatMul";
      }
    }
  }
}

}  // namespace
}  // namespace hearth
