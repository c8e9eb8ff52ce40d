// If/Loop subgraphs that read values of the enclosing graph.
#include <gtest/gtest.h>

#include "graph/model_builder.h"
#include "runtime/session.h"

namespace hearth {
namespace {
using testing::add_node;
using testing::set_tensor_type;

// then: Relu(x), else: Neg(x); x comes from the outer graph.
onnx::ModelProto if_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "cond", onnx::TensorProto::BOOL, {});
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {3});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {3});
  auto* n = add_node(g, "If", {"cond"}, {"y"}, "branch");
  for (auto [attr, op] : {std::pair{"then_branch", "Relu"}, {"else_branch", "Neg"}}) {
    auto* a = n->add_attribute();
    a->set_name(attr);
    a->set_type(onnx::AttributeProto::GRAPH);
    auto* sub = a->mutable_g();
    sub->set_name(attr);
    add_node(sub, op, {"x"}, {std::string(attr) + "_out"}, std::string(attr) + "_node");
    set_tensor_type(sub->add_output(), std::string(attr) + "_out", onnx::TensorProto::FLOAT, {3});
  }
  return m;
}

TEST(ControlFlow, if_branches_read_outer_scope_values) {
  std::string bytes = if_model().SerializeAsString();
  auto s = Session::load_bytes(bytes.data(), bytes.size(), "");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  Tensor x = Tensor::from_vector<float>({-1, 2, -3}, {3});
  auto then_out = (*s)->run({{"cond", Tensor::scalar<bool>(true)}, {"x", x}});
  ASSERT_TRUE(then_out.ok()) << then_out.status().to_string();
  EXPECT_EQ((*then_out)[0].data<float>()[0], 0.0f);
  EXPECT_EQ((*then_out)[0].data<float>()[1], 2.0f);
  auto else_out = (*s)->run({{"cond", Tensor::scalar<bool>(false)}, {"x", x}});
  ASSERT_TRUE(else_out.ok()) << else_out.status().to_string();
  EXPECT_EQ((*else_out)[0].data<float>()[0], 1.0f);
  EXPECT_EQ((*else_out)[0].data<float>()[2], 3.0f);
}

TEST(ControlFlow, if_rejects_non_bool_condition) {
  auto m = if_model();
  set_tensor_type(m.mutable_graph()->mutable_input(0), "cond", onnx::TensorProto::FLOAT, {});
  std::string bytes = m.SerializeAsString();
  auto s = Session::load_bytes(bytes.data(), bytes.size(), "");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto r = (*s)->run({{"cond", Tensor::scalar<float>(1.0f)}, {"x", Tensor::from_vector<float>({1, 2, 3}, {3})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("single bool"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace hearth
