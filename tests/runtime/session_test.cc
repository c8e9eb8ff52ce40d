// Session behaviour: input validation, unsupported ops, memory reuse.
#include "runtime/session.h"

#include <gtest/gtest.h>

#include "graph/model_builder.h"
#include "runtime/pool_allocator.h"
#include "runtime/session_pair.h"

namespace hearth {
namespace {
using testing::add_float_initializer;
using testing::add_node;
using testing::relu_model;

Result<std::unique_ptr<Session>> make(const onnx::ModelProto& m) {
  std::string bytes = m.SerializeAsString();
  return Session::load_bytes(bytes.data(), bytes.size(), "");
}

TEST(Session, runs_and_checks_values) {
  auto s = make(relu_model());
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto out = (*s)->run({{"x", Tensor::from_vector<float>({-1, 2, -3, 4, 5, -6, 7, -8}, {2, 4})}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].data<float>()[0], 0.0f);
  EXPECT_EQ((*out)[0].data<float>()[1], 2.0f);
  EXPECT_EQ((*out)[0].shape(), (Shape{2, 4}));
}

TEST(Session, rejects_wrong_dtype_rank_and_shape) {
  auto s = make(relu_model());
  ASSERT_TRUE(s.ok());
  auto r = (*s)->run({{"x", Tensor::from_vector<double>({1, 2, 3, 4}, {1, 4})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("must be float, got double"), std::string::npos) << r.status().message();
  r = (*s)->run({{"x", Tensor::from_vector<float>({1, 2, 3, 4}, {4})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("rank 2"), std::string::npos) << r.status().message();
  r = (*s)->run({{"x", Tensor::from_vector<float>({1, 2, 3}, {1, 3})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("dimension 1 must be 4"), std::string::npos) << r.status().message();
  r = (*s)->run({{"nope", Tensor::from_vector<float>({1, 2, 3, 4}, {1, 4})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no input named 'nope'"), std::string::npos);
  r = (*s)->run({});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'x' was not given"), std::string::npos);
}

TEST(Session, unsupported_op_names_op_domain_opset_and_node) {
  auto mp = relu_model();
  add_node(mp.mutable_graph(), "NoSuchOp", {"y"}, {"z"}, "mystery");
  auto s = make(mp);
  ASSERT_FALSE(s.ok());
  const std::string& msg = s.status().message();
  EXPECT_EQ(s.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(msg.find("NoSuchOp"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ai.onnx"), std::string::npos) << msg;
  EXPECT_NE(msg.find("opset 13"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'mystery'"), std::string::npos) << msg;
}

TEST(Session, folds_constant_subgraphs_at_load) {
  auto mp = relu_model();
  auto* g = mp.mutable_graph();
  add_float_initializer(g, "a", {4}, {1, -2, 3, -4});
  add_node(g, "Relu", {"a"}, {"ra"}, "const_relu");
  add_node(g, "Add", {"y", "ra"}, {"z"}, "add");
  g->mutable_output(0)->set_name("z");
  auto s = make(mp);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ((*s)->node_profile().size(), 2u);  // const_relu folded away
  auto out = (*s)->run({{"x", Tensor::from_vector<float>({1, 1, 1, 1}, {1, 4})}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].data<float>()[0], 2.0f);
  EXPECT_EQ((*out)[0].data<float>()[1], 1.0f);
  EXPECT_EQ((*out)[0].data<float>()[2], 4.0f);
}

TEST(Session, steady_state_reuses_memory) {
  auto mp = relu_model();
  auto* g = mp.mutable_graph();
  add_node(g, "Relu", {"y"}, {"y2"}, "r2");
  add_node(g, "Relu", {"y2"}, {"y3"}, "r3");
  g->mutable_output(0)->set_name("y3");
  auto s = make(mp);
  ASSERT_TRUE(s.ok());
  Tensor x = Tensor::from_vector<float>(std::vector<float>(4096, 1.0f), {1024, 4});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*s)->run({{"x", x}}).ok());
  size_t held = (*s)->pool_bytes();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE((*s)->run({{"x", x}}).ok());
  EXPECT_EQ((*s)->pool_bytes(), held);
  // Three 16 KiB intermediates alive at most two at a time, plus the output.
  EXPECT_LE(held, 3u * 16384u);
}

// Outputs may take over the memory of inputs the run no longer needs (fused
// residuals): results must not change, and a tensor the caller fed is never
// written, even where it is a residual.
TEST(Session, in_place_outputs_never_touch_fed_or_live_tensors) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("residuals");
  testing::set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {1, 8, 6, 6});
  testing::set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {1, 8, 6, 6});
  testing::set_tensor_type(g->add_output(), "y2", onnx::TensorProto::FLOAT, {1, 8, 6, 6});
  auto conv = [&](const std::string& in, const std::string& out, uint32_t seed) {
    add_float_initializer(g, out + "_W", {8, 8, 3, 3}, testing::random_values(8 * 8 * 9, seed, -0.3f, 0.3f));
    add_float_initializer(g, out + "_B", {8}, testing::random_values(8, seed + 1));
    auto* n = add_node(g, "Conv", {in, out + "_W", out + "_B"}, {out}, out);
    auto* a = n->add_attribute();
    a->set_name("pads");
    a->set_type(onnx::AttributeProto::INTS);
    for (int i = 0; i < 4; ++i) a->add_ints(1);
  };
  conv("x", "a", 1);
  conv("a", "c1", 3);
  add_node(g, "Relu", {"c1"}, {"t"}, "relu1");
  conv("t", "c2", 5);
  add_node(g, "Add", {"c2", "a"}, {"s"}, "residual");  // a's last reader
  add_node(g, "Relu", {"s"}, {"y"}, "relu2");
  conv("x", "c3", 7);
  add_node(g, "Add", {"c3", "x"}, {"s2"}, "fed_residual");  // x is the caller's
  add_node(g, "Relu", {"s2"}, {"y2"}, "relu3");
  const std::vector<float> xv = testing::random_values(8 * 36, 9, -2.0f, 2.0f);
  for (bool blocked : {false, true}) {
    for (int threads : {1, 2}) {
      Tensor x = Tensor::from_vector<float>(xv, {1, 8, 6, 6});
      SessionOptions plain;
      plain.optimize = false;
      plain.intra_op_threads = threads;
      SessionOptions fused;
      fused.blocked_layout = blocked;
      fused.intra_op_threads = threads;
      auto o = testing::run_session_pair(m, {{"x", x}}, plain, fused);
      ASSERT_EQ(o.tested.size(), 2u);
      EXPECT_GE(o.tested_ops["Conv"] + o.tested_ops["FusedConv"], 4);
      EXPECT_EQ(o.tested_ops["Add"], 0) << "both residuals were fused";
      for (size_t k = 0; k < 2; ++k)
        for (int64_t i = 0; i < o.reference[k].numel(); ++i)
          ASSERT_NEAR(o.tested[k].data<float>()[i], o.reference[k].data<float>()[i], 1e-4)
              << "output " << k << " blocked " << blocked << " threads " << threads;
      for (size_t i = 0; i < xv.size(); ++i) ASSERT_EQ(x.data<float>()[i], xv[i]) << "the fed input was written";
    }
  }
}

// Element-wise ops on tensors that die with them work in place: a chain of
// them holds one buffer, not one per step, and computes the same values.
TEST(Session, element_wise_chain_runs_in_one_buffer) {
  auto mp = relu_model();  // y = Relu(x), x [N, 4]
  auto* g = mp.mutable_graph();
  add_node(g, "Neg", {"y"}, {"n"}, "neg");
  add_node(g, "Abs", {"n"}, {"a"}, "abs");
  add_node(g, "Sqrt", {"a"}, {"r"}, "sqrt");
  add_node(g, "Relu", {"x"}, {"y2"}, "relu2");  // a second chain: r2 = Sqrt(Relu(x))
  add_node(g, "Sqrt", {"y2"}, {"r2"}, "sqrt2");
  add_node(g, "Add", {"r", "r2"}, {"out"}, "add");
  g->mutable_output(0)->set_name("out");
  auto s = make(mp);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  std::vector<float> xv(4096);
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>(i % 17) - 8.0f;
  Tensor x = Tensor::from_vector<float>(xv, {1024, 4});
  for (int i = 0; i < 3; ++i) {
    auto out = (*s)->run({{"x", x}});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    for (size_t k = 0; k < xv.size(); ++k)
      ASSERT_FLOAT_EQ((*out)[0].data<float>()[k], 2.0f * std::sqrt(std::max(xv[k], 0.0f))) << k;
    for (size_t k = 0; k < xv.size(); ++k) ASSERT_EQ(x.data<float>()[k], xv[k]) << "the feed was written";
  }
  // Two 16 KiB buffers (one per chain, the feed is never reused); without in-place
  // outputs the first chain alone held two.
  EXPECT_LE((*s)->pool_bytes(), 2u * 16384u);
}

}  // namespace
}  // namespace hearth

namespace hearth {
namespace {

// ConstantOfShape asked for 2^60 elements: an error, not an abort.
TEST(Session, absurd_allocation_is_an_error_not_a_crash) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  testing::set_tensor_type(g->add_input(), "shape", onnx::TensorProto::INT64, {2});
  testing::set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {-1, -1});
  testing::add_node(g, "ConstantOfShape", {"shape"}, {"y"}, "fill");
  std::string bytes = m.SerializeAsString();
  auto s = Session::load_bytes(bytes.data(), bytes.size(), "");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto r = (*s)->run({{"shape", Tensor::from_vector<int64_t>({int64_t{1} << 30, int64_t{1} << 30}, {2})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("fill"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace hearth
