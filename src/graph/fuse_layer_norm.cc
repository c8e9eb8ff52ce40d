// The LayerNormalization pass: the spelled-out form of exports before opset 17
// -> one ai.hearth LayerNormalization.
#include <algorithm>
#include <cmath>

#include "graph/rewrite.h"

namespace hearth {

namespace {

// True when ReduceMean `n` averages over the last axis of `x` only, keeping dims
// (axes as an attribute: the opsets Hearth reads, up to 17, have no axes input).
bool mean_over_last_axis(const Graph& g, const Node& n, const std::string& x) {
  const std::vector<int64_t> axes = n.attr_ints("axes");
  if (n.attr_int("keepdims", 1) != 1 || n.inputs.size() != 1 || axes.size() != 1) return false;
  if (axes[0] == -1) return true;
  const ValueInfo* v = find_value_info(g, x);
  return v && v->has_shape && axes[0] == static_cast<int64_t>(v->dims.size()) - 1;
}

}  // namespace

// LayerNormalization as exports before opset 17 spell it out:
//   d = x - ReduceMean(x); y = d / Sqrt(ReduceMean(Pow(d, 2)) + eps) * gamma [+ beta]
// (last axis, constant 1-D gamma and beta) -> one ai.hearth LayerNormalization.
int fuse_layer_norms(Graph& g) {
  int fused = 0;
  std::vector<bool> dead(g.nodes.size(), false);
  Uses uses(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& mean = g.nodes[i];
    if (dead[i] || !is_default(mean) || mean.op_type != "ReduceMean" || mean.inputs.empty()) continue;
    const std::string x = mean.inputs[0];
    if (!mean_over_last_axis(g, mean, x)) continue;
    const size_t sub_idx = uses.sole_reader(mean.outputs[0]);
    const Node* sub = live_node(g, sub_idx, dead, "Sub");
    if (!sub || sub->inputs.size() != 2 || sub->inputs[0] != x || sub->inputs[1] != mean.outputs[0]) continue;
    const std::string d = sub->outputs[0];
    auto readers = uses.readers.find(d);
    if (uses.graph_outputs.count(d) || readers == uses.readers.end() || readers->second.size() != 2) continue;
    size_t pow_idx = SIZE_MAX, div_idx = SIZE_MAX;
    for (auto [idx, slot] : readers->second) {
      if (idx == SIZE_MAX || dead[idx] || !is_default(g.nodes[idx])) continue;
      if (g.nodes[idx].op_type == "Pow" && slot == 0) pow_idx = idx;
      if (g.nodes[idx].op_type == "Div" && slot == 0) div_idx = idx;
    }
    if (pow_idx == SIZE_MAX || div_idx == SIZE_MAX) continue;
    if (g.nodes[pow_idx].inputs.size() != 2 || !scalar_near(g, g.nodes[pow_idx].inputs[1], 2.0f, 0.0f)) continue;
    const size_t var_idx = uses.sole_reader(g.nodes[pow_idx].outputs[0]);
    const Node* var = live_node(g, var_idx, dead, "ReduceMean");
    if (!var || !mean_over_last_axis(g, *var, g.nodes[pow_idx].outputs[0])) continue;
    const size_t add_idx = uses.sole_reader(var->outputs[0]);
    const Node* add = live_node(g, add_idx, dead, "Add");
    float eps = 0;
    if (!add || !scalar_value(g, other_input(*add, var->outputs[0]), &eps)) continue;
    const size_t sqrt_idx = uses.sole_reader(add->outputs[0]);
    const Node* sq = live_node(g, sqrt_idx, dead, "Sqrt");
    if (!sq || uses.sole_reader(sq->outputs[0]) != div_idx || g.nodes[div_idx].inputs[1] != sq->outputs[0]) continue;
    const std::string normed = g.nodes[div_idx].outputs[0];
    const size_t mul_idx = uses.sole_reader(normed);
    const Node* mul = live_node(g, mul_idx, dead, "Mul");
    if (!mul) continue;
    const std::string gamma = other_input(*mul, normed);
    const Tensor* gt = constant(g, {gamma}, 0);
    if (!gt || gt->dtype() != DataType::kFloat || gt->rank() != 1) continue;
    // gamma must match the normalized axis (else Mul would broadcast x's size-1 axis up).
    const ValueInfo* xv = find_value_info(g, x);
    if (!xv || !xv->has_shape || xv->dims.empty() || xv->dims.back() != gt->numel()) continue;
    std::string out = mul->outputs[0], beta;
    std::vector<size_t> parts = {i, sub_idx, pow_idx, var_idx, add_idx, sqrt_idx, div_idx, mul_idx};
    const size_t bias_idx = uses.sole_reader(out);
    if (const Node* bias = live_node(g, bias_idx, dead, "Add")) {
      const std::string b = other_input(*bias, out);
      const Tensor* bt = constant(g, {b}, 0);
      if (bt && bt->dtype() == DataType::kFloat && bt->rank() == 1 && bt->numel() == gt->numel()) {
        beta = b;
        out = bias->outputs[0];
        parts.push_back(bias_idx);
      }
    }
    Node ln;
    ln.name = mean.name + "_layer_norm";
    ln.op_type = "LayerNormalization";
    ln.domain = "ai.hearth";
    ln.inputs = {x, gamma};
    if (!beta.empty()) ln.inputs.push_back(beta);
    ln.outputs = {out};
    ln.set_attr_int("axis", -1);
    ln.set_attr_float("epsilon", eps);
    for (size_t k : parts) dead[k] = true;
    uses.drop_reads(i, g.nodes[i]);
    uses.add_reads(i, ln);
    g.nodes[i] = std::move(ln);  // the first node of the pattern becomes the fused one
    dead[i] = false;
    ++fused;
  }
  erase_dead(g, dead);
  return fused;
}

}  // namespace hearth
