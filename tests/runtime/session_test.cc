// Session behaviour: input validation, unsupported ops, memory reuse.
#include "runtime/session.h"

#include <gtest/gtest.h>

#include "graph/model_builder.h"
#include "runtime/pool_allocator.h"

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
