// Builds small ONNX models in tests with libonnx's protobuf classes.
#pragma once

#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

namespace hearth::testing {

inline void set_tensor_type(onnx::ValueInfoProto* v, const std::string& name, int elem_type,
                            const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto* shape = tt->mutable_shape();
  for (int64_t d : dims) {
    auto* dim = shape->add_dim();
    if (d >= 0) dim->set_dim_value(d);
    else dim->set_dim_param("N");
  }
}

// A model y = Relu(x) (+ more nodes added by the caller), float x[N,4].
inline onnx::ModelProto relu_model(int64_t opset = 13) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  auto* g = m.mutable_graph();
  g->set_name("test");
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, 4});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {-1, 4});
  auto* n = g->add_node();
  n->set_op_type("Relu");
  n->set_name("relu");
  n->add_input("x");
  n->add_output("y");
  return m;
}

inline onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op, const std::vector<std::string>& in,
                                 const std::vector<std::string>& out, const std::string& name) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& s : in) n->add_input(s);
  for (const auto& s : out) n->add_output(s);
  return n;
}

inline onnx::TensorProto* add_float_initializer(onnx::GraphProto* g, const std::string& name,
                                                const std::vector<int64_t>& dims, const std::vector<float>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  t->set_raw_data(values.data(), values.size() * sizeof(float));
  return t;
}

inline void set_int(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
inline void set_ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
inline void set_float(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
inline void set_string(onnx::NodeProto* n, const std::string& name, const std::string& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

// A small model written node by node, for tests that feed the loader hand-made (often
// hostile) graphs: declared inputs, integer or float initializers, untyped outputs.
class ModelSketch {
 public:
  explicit ModelSketch(int64_t opset = 17) {
    proto_.set_ir_version(8);
    auto* op = proto_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    proto_.mutable_graph()->set_name("sketch");
  }
  ModelSketch& input(const std::string& name, int elem_type, const std::vector<int64_t>& dims) {
    set_tensor_type(graph()->add_input(), name, elem_type, dims);
    return *this;
  }
  ModelSketch& ints(const std::string& name, const std::vector<int64_t>& values, std::vector<int64_t> dims = {-1}) {
    auto* t = graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    if (dims == std::vector<int64_t>{-1}) dims = {static_cast<int64_t>(values.size())};
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(values.data(), values.size() * sizeof(int64_t));
    return *this;
  }
  ModelSketch& floats(const std::string& name, const std::vector<int64_t>& dims, float value = 1.0f) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    add_float_initializer(graph(), name, dims, std::vector<float>(static_cast<size_t>(n), value));
    return *this;
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in,
                        const std::vector<std::string>& out) {
    auto* n = add_node(graph(), op, in, out, op + "_" + std::to_string(graph()->node_size()));
    return n;
  }
  ModelSketch& output(const std::string& name) {
    auto* o = graph()->add_output();
    o->set_name(name);
    return *this;
  }
  onnx::GraphProto* graph() { return proto_.mutable_graph(); }
  onnx::ModelProto& proto() { return proto_; }
  std::string bytes() const { return proto_.SerializeAsString(); }

 private:
  onnx::ModelProto proto_;
};

}  // namespace hearth::testing
