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

// Values of a subgraph declared with an empty TypeProto (no tensor, sequence or
// map set), as exporters that inline If branches write them: their types come
// from the producing nodes.
void untyped(onnx::ValueInfoProto* v, const std::string& name) {
  v->set_name(name);
  v->mutable_type();  // present, nothing set
}

onnx::AttributeProto* graph_attr(onnx::NodeProto* n, const std::string& name) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::GRAPH);
  a->mutable_g()->set_name(name);
  return a;
}

Result<std::unique_ptr<Session>> load(const onnx::ModelProto& m) {
  const std::string bytes = m.SerializeAsString();
  return Session::load_bytes(bytes.data(), bytes.size(), "");
}

TEST(ControlFlow, if_branches_with_untyped_outputs_and_values) {
  auto m = if_model();
  auto* n = m.mutable_graph()->mutable_node(0);
  for (auto& a : *n->mutable_attribute()) {
    auto* sub = a.mutable_g();
    const std::string out = sub->output(0).name();
    // A second node through an untyped inner value, and an untyped output.
    sub->mutable_node(0)->set_output(0, out + "_inner");
    untyped(sub->add_value_info(), out + "_inner");
    add_node(sub, "Identity", {out + "_inner"}, {out}, out + "_id");
    sub->clear_output();
    untyped(sub->add_output(), out);
  }
  auto s = load(m);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  Tensor x = Tensor::from_vector<float>({-1, 2, -3}, {3});
  auto then_out = (*s)->run({{"cond", Tensor::scalar<bool>(true)}, {"x", x}});
  ASSERT_TRUE(then_out.ok()) << then_out.status().to_string();
  EXPECT_EQ((*then_out)[0].dtype(), DataType::kFloat);
  EXPECT_EQ((*then_out)[0].shape(), (Shape{3}));
  EXPECT_EQ((*then_out)[0].data<float>()[1], 2.0f);
  auto else_out = (*s)->run({{"cond", Tensor::scalar<bool>(false)}, {"x", x}});
  ASSERT_TRUE(else_out.ok()) << else_out.status().to_string();
  EXPECT_EQ((*else_out)[0].data<float>()[2], 3.0f);
}

// Loop of 3 iterations: x doubles, and every iteration's Relu(x) is stacked;
// the body's outputs carry no type.
TEST(ControlFlow, loop_body_with_untyped_outputs) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {3});
  set_tensor_type(g->add_output(), "x_final", onnx::TensorProto::FLOAT, {3});
  set_tensor_type(g->add_output(), "stacked", onnx::TensorProto::FLOAT, {3, 3});
  auto* trip = g->add_initializer();
  trip->set_name("trip");
  trip->set_data_type(onnx::TensorProto::INT64);
  trip->add_int64_data(3);
  auto* n = add_node(g, "Loop", {"trip", "", "x"}, {"x_final", "stacked"}, "loop");
  auto* body = graph_attr(n, "body")->mutable_g();
  set_tensor_type(body->add_input(), "i", onnx::TensorProto::INT64, {});
  set_tensor_type(body->add_input(), "c", onnx::TensorProto::BOOL, {});
  set_tensor_type(body->add_input(), "xc", onnx::TensorProto::FLOAT, {3});
  add_node(body, "Identity", {"c"}, {"c_out"}, "keep");
  add_node(body, "Add", {"xc", "xc"}, {"x_out"}, "double");
  add_node(body, "Relu", {"xc"}, {"scan_out"}, "relu");
  for (const char* out : {"c_out", "x_out", "scan_out"}) untyped(body->add_output(), out);
  auto s = load(m);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto r = (*s)->run({{"x", Tensor::from_vector<float>({1, -2, 3}, {3})}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 2u);
  const float want_final[] = {8, -16, 24};
  for (int k = 0; k < 3; ++k) EXPECT_EQ((*r)[0].data<float>()[k], want_final[k]);
  ASSERT_EQ((*r)[1].shape(), (Shape{3, 3}));
  const float want_stacked[] = {1, 0, 3, 2, 0, 6, 4, 0, 12};
  for (int k = 0; k < 9; ++k) EXPECT_EQ((*r)[1].data<float>()[k], want_stacked[k]) << k;
}

// Scan over the rows of a [2, 3] input: a running sum and each row squared,
// from a body whose outputs carry no type.
TEST(ControlFlow, scan_body_with_untyped_outputs) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(16);
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "init", onnx::TensorProto::FLOAT, {3});
  set_tensor_type(g->add_input(), "seq", onnx::TensorProto::FLOAT, {2, 3});
  set_tensor_type(g->add_output(), "sum", onnx::TensorProto::FLOAT, {3});
  set_tensor_type(g->add_output(), "squares", onnx::TensorProto::FLOAT, {2, 3});
  auto* n = add_node(g, "Scan", {"init", "seq"}, {"sum", "squares"}, "scan");
  testing::set_int(n, "num_scan_inputs", 1);
  auto* body = graph_attr(n, "body")->mutable_g();
  set_tensor_type(body->add_input(), "s", onnx::TensorProto::FLOAT, {3});
  set_tensor_type(body->add_input(), "e", onnx::TensorProto::FLOAT, {3});
  add_node(body, "Add", {"s", "e"}, {"s_out"}, "acc");
  add_node(body, "Mul", {"e", "e"}, {"sq"}, "square");
  untyped(body->add_output(), "s_out");
  untyped(body->add_output(), "sq");
  auto s = load(m);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto r = (*s)->run({{"init", Tensor::from_vector<float>({0, 1, 2}, {3})},
                      {"seq", Tensor::from_vector<float>({1, 2, 3, -1, -2, -3}, {2, 3})}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const float want_sum[] = {0, 1, 2};
  for (int k = 0; k < 3; ++k) EXPECT_EQ((*r)[0].data<float>()[k], want_sum[k]);
  const float want_sq[] = {1, 4, 9, 1, 4, 9};
  for (int k = 0; k < 6; ++k) EXPECT_EQ((*r)[1].data<float>()[k], want_sq[k]);
}

// Sequence, map and optional values stay refused, by name.
TEST(ControlFlow, sequence_typed_values_are_refused_by_name) {
  auto m = if_model();
  auto* sub = m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
  auto* out = sub->mutable_output(0);
  out->mutable_type()->mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type()->set_elem_type(
      onnx::TensorProto::FLOAT);
  auto s = load(m);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("is not a tensor"), std::string::npos) << s.status().message();
}

}  // namespace
}  // namespace hearth
