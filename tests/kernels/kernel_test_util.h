// Runs one node through the global kernel registry, for kernel unit tests.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel.h"

namespace hearth::testing {

// Builds a node `op_type` with inputs named in0..inN and outputs out0..outM.
// Inputs that are undefined Tensors become omitted ("") inputs.
inline Node make_node(const std::string& op_type, size_t num_inputs, size_t num_outputs,
                      std::map<std::string, Attribute> attrs = {}, const std::string& domain = "") {
  Node n;
  n.op_type = op_type;
  n.domain = domain;
  n.name = op_type + "_test";
  for (size_t i = 0; i < num_inputs; ++i) n.inputs.push_back("in" + std::to_string(i));
  for (size_t i = 0; i < num_outputs; ++i) n.outputs.push_back("out" + std::to_string(i));
  for (auto& [k, v] : attrs) {
    v.name = k;
    n.attributes[k] = v;
  }
  return n;
}

inline Attribute attr_int(int64_t v) { Attribute a; a.type = Attribute::Type::kInt; a.i = v; return a; }
inline Attribute attr_float(float v) { Attribute a; a.type = Attribute::Type::kFloat; a.f = v; return a; }
inline Attribute attr_string(std::string v) { Attribute a; a.type = Attribute::Type::kString; a.s = std::move(v); return a; }
inline Attribute attr_ints(std::vector<int64_t> v) { Attribute a; a.type = Attribute::Type::kInts; a.ints = std::move(v); return a; }
inline Attribute attr_floats(std::vector<float> v) { Attribute a; a.type = Attribute::Type::kFloats; a.floats = std::move(v); return a; }

// Creates the kernel for `node` at `opset` and runs it once on `inputs`.
// `constant_inputs[i]` true marks input i as an initializer (visible to init()).
// `donatable` marks inputs the kernel may turn into output memory (KernelContext).
inline Result<std::vector<Tensor>> run_node(Node node, const std::vector<Tensor>& inputs, int64_t opset = 17,
                                            std::vector<bool> constant_inputs = {}, int threads = 1,
                                            uint64_t donatable = 0) {
  for (size_t i = 0; i < inputs.size() && i < node.inputs.size(); ++i)
    if (!inputs[i].defined()) node.inputs[i] = "";
  const KernelDef* def = KernelRegistry::global().find(node.op_type, node.domain, opset);
  if (!def) return unimplemented("no kernel for ", node.op_type, " at opset ", opset);
  KernelInfo info{node, opset, [&](size_t i) -> const Tensor* {
                    if (i < inputs.size() && i < constant_inputs.size() && constant_inputs[i] && inputs[i].defined()) return &inputs[i];
                    return nullptr;
                  }};
  HEARTH_ASSIGN_OR_RETURN(auto kernel, def->factory(info));
  std::vector<const Tensor*> in;
  for (const auto& t : inputs) in.push_back(t.defined() ? &t : nullptr);
  std::vector<Tensor> outs(node.outputs.size());
  KernelContext ctx(node, in, &outs, default_allocator(), threads, donatable);
  HEARTH_RETURN_IF_ERROR(kernel->compute(ctx));
  return outs;
}

// A float tensor of `shape` with values drawn uniformly from [lo, hi).
inline Tensor random_tensor(const Shape& shape, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(DataType::kFloat, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

// The elements of `t` as a vector.
template <typename T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

// Runs single-output `op` on `in`; records a test failure and returns an
// undefined Tensor when the kernel fails.
inline Tensor run_op(const std::string& op, std::vector<Tensor> in, std::map<std::string, Attribute> attrs = {},
                     int64_t opset = 17) {
  auto r = run_node(make_node(op, in.size(), 1, std::move(attrs)), in, opset);
  EXPECT_TRUE(r.ok()) << op << ": " << r.status().to_string();
  return r.ok() ? (*r)[0] : Tensor();
}

}  // namespace hearth::testing
