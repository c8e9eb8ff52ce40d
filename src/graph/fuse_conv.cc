// The Conv pass: BatchNormalization folded into the Conv before it, then a residual
// Add of a same-shaped tensor and an activation (Relu, Sigmoid, Tanh, HardSwish,
// HardSigmoid, Clip, LeakyRelu, Swish) absorbed as oneDNN post-ops of com.microsoft FusedConv.
#include <algorithm>
#include <cmath>

#include "graph/rewrite.h"

namespace hearth {

namespace {

// Folds BatchNormalization into the Conv feeding it: W' = W * s, B' = (B - mean) * s + beta, s = gamma / sqrt(var + eps).
bool fold_conv_bn(Graph& g, size_t conv_idx, size_t bn_idx, int& counter) {
  Node& conv = g.nodes[conv_idx];
  const Node& bn = g.nodes[bn_idx];
  if (bn.outputs.size() > 1 && !bn.outputs[1].empty()) return false;  // training outputs
  if (bn.attr_int("training_mode", 0) != 0 || bn.attr_int("spatial", 1) != 1) return false;
  const Tensor* w = constant(g, conv.inputs, 1);
  const Tensor* b = conv.inputs.size() > 2 ? constant(g, conv.inputs, 2) : nullptr;
  if (conv.inputs.size() > 2 && !conv.inputs[2].empty() && !b) return false;
  const Tensor* gamma = constant(g, bn.inputs, 1);
  const Tensor* beta = constant(g, bn.inputs, 2);
  const Tensor* mean = constant(g, bn.inputs, 3);
  const Tensor* var = constant(g, bn.inputs, 4);
  if (!w || !gamma || !beta || !mean || !var || w->dtype() != DataType::kFloat || w->rank() < 3) return false;
  const int64_t cout = w->dim(0);
  if (cout <= 0) return false;  // nothing to fold (and no division by zero below)
  for (const Tensor* t : {gamma, beta, mean, var})
    if (t->dtype() != DataType::kFloat || t->numel() != cout) return false;
  if (b && (b->dtype() != DataType::kFloat || b->numel() != cout)) return false;
  const float eps = bn.attr_float("epsilon", 1e-5f);
  Tensor nw = w->clone();
  Tensor nb(DataType::kFloat, {cout});
  const int64_t per = w->numel() / cout;
  for (int64_t c = 0; c < cout; ++c) {
    const float s = gamma->data<float>()[c] / std::sqrt(var->data<float>()[c] + eps);
    for (int64_t i = 0; i < per; ++i) nw.data<float>()[c * per + i] *= s;
    const float bias = b ? b->data<float>()[c] : 0.0f;
    nb.data<float>()[c] = (bias - mean->data<float>()[c]) * s + beta->data<float>()[c];
  }
  const std::string base = conv.name + "_bn_folded";
  g.initializers[base + "_W"] = std::move(nw);
  g.initializers[base + "_B"] = std::move(nb);
  conv.inputs.resize(3);
  conv.inputs[1] = base + "_W";
  conv.inputs[2] = base + "_B";
  conv.outputs[0] = bn.outputs[0];
  ++counter;
  return true;
}

// Maps an activation node to FusedConv's activation name and parameters.
bool fusable_activation(const Graph& g, const Node& n, std::string* name, std::vector<float>* params) {
  if (!is_default(n)) return false;
  const std::string& op = n.op_type;
  if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "HardSwish") {
    *name = op;
    return true;
  }
  if (op == "LeakyRelu") {
    *name = op;
    *params = {n.attr_float("alpha", 0.01f)};
    return true;
  }
  if (op == "HardSigmoid") {
    *name = op;
    *params = {n.attr_float("alpha", 0.2f), n.attr_float("beta", 0.5f)};
    return true;
  }
  if (op == "Clip") {
    float lo = n.attr_float("min", -INFINITY), hi = n.attr_float("max", INFINITY);
    for (size_t i = 1; i < n.inputs.size() && i < 3; ++i) {
      if (n.inputs[i].empty()) continue;
      const Tensor* t = constant(g, n.inputs, i);
      if (!t || t->numel() != 1 || t->dtype() != DataType::kFloat) return false;
      (i == 1 ? lo : hi) = t->data<float>()[0];
    }
    *name = op;
    *params = {lo, hi};
    return true;
  }
  return false;
}

// Matches y -> Sigmoid -> s and Mul(y, s) (either order) where y feeds exactly those two
// nodes; sets the indices of the Sigmoid and the Mul.
bool swish_after(const Graph& g, const Uses& uses, const std::string& y, size_t* sig_idx, size_t* mul_idx,
                 const std::vector<bool>& dead) {
  if (uses.graph_outputs.count(y)) return false;
  auto it = uses.readers.find(y);
  if (it == uses.readers.end() || it->second.size() != 2) return false;
  size_t sig = SIZE_MAX, mul = SIZE_MAX;
  for (auto [idx, slot] : it->second) {
    if (idx == SIZE_MAX || dead[idx] || !is_default(g.nodes[idx])) return false;
    if (g.nodes[idx].op_type == "Sigmoid") sig = idx;
    else if (g.nodes[idx].op_type == "Mul") mul = idx;
  }
  if (sig == SIZE_MAX || mul == SIZE_MAX) return false;
  const std::string& s = g.nodes[sig].outputs[0];
  const Node& m = g.nodes[mul];
  if (m.inputs.size() != 2 || !((m.inputs[0] == y && m.inputs[1] == s) || (m.inputs[1] == y && m.inputs[0] == s))) return false;
  if (uses.sole_reader(s) != mul) return false;
  *sig_idx = sig;
  *mul_idx = mul;
  return true;
}

}  // namespace

void fuse_convs(Model& model, OptimizerStats& stats) {
  Graph& g = model.graph;
  std::vector<bool> dead(g.nodes.size(), false);
  bool fused_any = false;
  Uses uses(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (dead[i] || !is_default(g.nodes[i]) || g.nodes[i].op_type != "Conv") continue;
    size_t next = uses.sole_reader(g.nodes[i].outputs[0]);
    if (next != SIZE_MAX && !dead[next] && is_default(g.nodes[next]) && g.nodes[next].op_type == "BatchNormalization") {
      uses.drop_reads(i, g.nodes[i]);
      const bool folded = fold_conv_bn(g, i, next, stats.conv_bn_folded);
      uses.add_reads(i, g.nodes[i]);
      if (folded) {
        dead[next] = true;
        next = uses.sole_reader(g.nodes[i].outputs[0]);
      }
    }
    // Optional residual Add of a same-shaped tensor, then an optional activation.
    std::string z;
    size_t add_idx = SIZE_MAX;
    if (next != SIZE_MAX && !dead[next] && is_default(g.nodes[next]) && g.nodes[next].op_type == "Add") {
      const Node& add = g.nodes[next];
      const std::string& y = g.nodes[i].outputs[0];
      std::string other = add.inputs[0] == y ? add.inputs[1] : add.inputs[0];
      if (other != y && same_known_shape(g, y, other)) {
        z = other;
        add_idx = next;
        next = uses.sole_reader(add.outputs[0]);
      }
    }
    std::string act;
    std::vector<float> params;
    size_t act_idx = SIZE_MAX;
    const std::string& pre_act = add_idx != SIZE_MAX ? g.nodes[add_idx].outputs[0] : g.nodes[i].outputs[0];
    size_t sigmoid_idx = SIZE_MAX;
    if (add_idx == SIZE_MAX && swish_after(g, uses, pre_act, &sigmoid_idx, &act_idx, dead)) {
      act = "Swish";  // Conv -> Sigmoid -> Mul(conv, sigmoid): SiLU, as in EfficientNet
      dead[sigmoid_idx] = true;
    } else if (next != SIZE_MAX && !dead[next] && fusable_activation(g, g.nodes[next], &act, &params)) {
      act_idx = next;
    }
    if (add_idx == SIZE_MAX && act_idx == SIZE_MAX) continue;
    Node& conv = g.nodes[i];
    conv.op_type = "FusedConv";
    conv.domain = "com.microsoft";
    uses.drop_reads(i, conv);
    conv.inputs.resize(3);
    if (add_idx != SIZE_MAX) {
      conv.inputs.push_back(z);
      conv.outputs[0] = g.nodes[add_idx].outputs[0];
      dead[add_idx] = true;
    }
    if (act_idx != SIZE_MAX) {
      conv.set_attr_string("activation", act);
      conv.set_attr_floats("activation_params", params);
      conv.outputs[0] = g.nodes[act_idx].outputs[0];
      dead[act_idx] = true;
    }
    uses.add_reads(i, conv);
    ++stats.conv_fused;
    fused_any = true;
  }
  erase_dead(g, dead);
  if (fused_any && !model.opsets.count("com.microsoft")) model.opsets["com.microsoft"] = 1;
}

}  // namespace hearth
