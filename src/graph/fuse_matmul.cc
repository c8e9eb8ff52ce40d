// The MatMul pass: MatMul -> ai.hearth FusedMatMul with the scales, transposes, bias
// and GELU (erf or tanh form) that PyTorch exports around it.
#include <algorithm>
#include <cmath>

#include "graph/rewrite.h"

namespace hearth {

namespace {

// Matches GELU in its erf form on `x`, as PyTorch exports it:
//   x * (1 + erf(x / sqrt2)) * 0.5          (torch.nn.GELU)
//   (x * 0.5) * (1 + erf(x / sqrt2))        (Hugging Face)
// with x / sqrt2 also written x * (1 / sqrt2). Sets the five nodes and the result.
bool gelu_after(const Graph& g, const Uses& uses, const std::string& x, const std::vector<bool>& dead,
                std::vector<size_t>* nodes, std::string* result) {
  if (uses.graph_outputs.count(x)) return false;
  auto it = uses.readers.find(x);
  if (it == uses.readers.end() || it->second.size() != 2) return false;
  size_t scale = SIZE_MAX, other = SIZE_MAX;
  for (auto [idx, slot] : it->second) {
    if (idx == SIZE_MAX || dead[idx] || !is_default(g.nodes[idx])) return false;
    const Node& n = g.nodes[idx];
    const std::string c = other_input(n, x);
    const bool is_scale = (n.op_type == "Div" && n.inputs[0] == x && scalar_near(g, c, 1.41421356f, 1e-3f)) ||
                          (n.op_type == "Mul" && scalar_near(g, c, 0.70710678f, 1e-3f));
    (is_scale ? scale : other) = idx;
  }
  if (scale == SIZE_MAX || other == SIZE_MAX) return false;
  const Node* erf = live_node(g, uses.sole_reader(g.nodes[scale].outputs[0]), dead, "Erf");
  if (!erf) return false;
  const size_t add_idx = uses.sole_reader(erf->outputs[0]);
  const Node* add = live_node(g, add_idx, dead, "Add");
  if (!add || !scalar_near(g, other_input(*add, erf->outputs[0]), 1.0f, 0.0f)) return false;
  const std::string& a = add->outputs[0];
  const Node& o = g.nodes[other];
  if (o.op_type != "Mul") return false;
  size_t last_idx = SIZE_MAX;
  if (other_input(o, x) == a) {  // x * (1 + erf) then * 0.5
    if (uses.sole_reader(a) != other) return false;
    last_idx = uses.sole_reader(o.outputs[0]);
    const Node* last = live_node(g, last_idx, dead, "Mul");
    if (!last || !scalar_near(g, other_input(*last, o.outputs[0]), 0.5f, 0.0f)) return false;
  } else if (scalar_near(g, other_input(o, x), 0.5f, 0.0f)) {  // (x * 0.5) * (1 + erf)
    last_idx = uses.sole_reader(a);
    const Node* last = live_node(g, last_idx, dead, "Mul");
    if (!last || other_input(*last, a) != o.outputs[0] || uses.sole_reader(o.outputs[0]) != last_idx) return false;
  } else {
    return false;
  }
  *nodes = {scale, static_cast<size_t>(erf - g.nodes.data()), add_idx, other, last_idx};
  *result = g.nodes[last_idx].outputs[0];
  return true;
}

// Matches GELU's tanh approximation on `x`, as PyTorch exports it:
//   x * (1 + tanh(0.79788456 * (x + 0.044715 * x^3))) * 0.5    (nn.GELU(approximate="tanh"))
//   (x * 0.5) * (1 + tanh(...))                               (Hugging Face's gelu_new)
// with x^3 written Pow(x, 3) or x * (x * x). Every reader of x must be part of
// it. Sets the nodes to remove and the result.
bool gelu_tanh_after(const Graph& g, const Uses& uses, const std::string& x, const std::vector<bool>& dead,
                     std::vector<size_t>* nodes, std::string* result) {
  if (uses.graph_outputs.count(x)) return false;
  auto it = uses.readers.find(x);
  if (it == uses.readers.end()) return false;
  std::set<size_t> x_readers;
  for (auto [idx, slot] : it->second) {
    if (idx == SIZE_MAX || dead[idx] || !is_default(g.nodes[idx])) return false;
    x_readers.insert(idx);
  }
  std::vector<size_t> found;
  std::string cube;
  for (size_t r : x_readers) {
    const Node& n = g.nodes[r];
    if (n.op_type == "Pow" && n.inputs.size() == 2 && n.inputs[0] == x && scalar_near(g, n.inputs[1], 3.0f, 0.0f)) {
      found = {r};
      cube = n.outputs[0];
    } else if (n.op_type == "Mul" && n.inputs.size() == 2 && n.inputs[0] == x && n.inputs[1] == x) {
      const size_t r2 = only_reader(g, uses, n.outputs[0], dead, "Mul");
      if (r2 != SIZE_MAX && other_input(g.nodes[r2], n.outputs[0]) == x) {
        found = {r, r2};
        cube = g.nodes[r2].outputs[0];
      }
    }
    if (!cube.empty()) break;
  }
  if (cube.empty()) return false;
  // 0.044715 * x^3, then x + that, then 0.79788456 * that, tanh, 1 + that.
  const size_t r3 = only_reader(g, uses, cube, dead, "Mul");
  if (r3 == SIZE_MAX || !scalar_near(g, other_input(g.nodes[r3], cube), 0.044715f, 1e-5f)) return false;
  const size_t r4 = only_reader(g, uses, g.nodes[r3].outputs[0], dead, "Add");
  if (r4 == SIZE_MAX || other_input(g.nodes[r4], g.nodes[r3].outputs[0]) != x) return false;
  const size_t r5 = only_reader(g, uses, g.nodes[r4].outputs[0], dead, "Mul");
  if (r5 == SIZE_MAX || !scalar_near(g, other_input(g.nodes[r5], g.nodes[r4].outputs[0]), 0.7978845608f, 1e-4f))
    return false;
  const size_t r6 = only_reader(g, uses, g.nodes[r5].outputs[0], dead, "Tanh");
  if (r6 == SIZE_MAX) return false;
  const size_t r7 = only_reader(g, uses, g.nodes[r6].outputs[0], dead, "Add");
  if (r7 == SIZE_MAX || !scalar_near(g, other_input(g.nodes[r7], g.nodes[r6].outputs[0]), 1.0f, 0.0f)) return false;
  const std::string one_plus = g.nodes[r7].outputs[0];
  found.insert(found.end(), {r3, r4, r5, r6, r7});
  const size_t r8 = only_reader(g, uses, one_plus, dead, "Mul");
  if (r8 == SIZE_MAX) return false;
  size_t last = SIZE_MAX;
  if (other_input(g.nodes[r8], one_plus) == x) {  // x * (1 + tanh) then * 0.5
    last = only_reader(g, uses, g.nodes[r8].outputs[0], dead, "Mul");
    if (last == SIZE_MAX || !scalar_near(g, other_input(g.nodes[last], g.nodes[r8].outputs[0]), 0.5f, 0.0f))
      return false;
    found.insert(found.end(), {r8, last});
  } else {  // (x * 0.5) * (1 + tanh)
    const std::string half_x = other_input(g.nodes[r8], one_plus);
    size_t half = SIZE_MAX;
    for (size_t r : x_readers)
      if (g.nodes[r].op_type == "Mul" && g.nodes[r].outputs[0] == half_x &&
          scalar_near(g, other_input(g.nodes[r], x), 0.5f, 0.0f))
        half = r;
    if (half == SIZE_MAX || uses.sole_reader(half_x) != r8) return false;
    last = r8;
    found.insert(found.end(), {half, r8});
  }
  for (size_t r : x_readers)
    if (std::find(found.begin(), found.end(), r) == found.end()) return false;  // x is read elsewhere too
  *nodes = found;
  *result = g.nodes[last].outputs[0];
  return true;
}

// A bias for MatMul's [..., N] output: a float constant of N elements that
// broadcasts along the last axis only and leaves the output's rank alone.
bool matmul_bias(const Graph& g, const std::string& name, const std::string& a, int64_t n) {
  const Tensor* t = constant(g, {name}, 0);
  if (!t || t->dtype() != DataType::kFloat || t->numel() != n || t->rank() < 1 || t->rank() > 2) return false;
  if (t->rank() == 1) return true;
  const ValueInfo* va = find_value_info(g, a);  // [1, N] needs an A of rank >= 2
  return t->dim(0) == 1 && va && va->has_shape && va->dims.size() >= 2;
}

// True when the MatMul's element type is known to be float32: from a constant
// input, or the declared / inferred type of an input or the output.
bool known_float(const Graph& g, const Node& mm) {
  for (const std::string* name : {&mm.inputs[0], &mm.inputs[1], &mm.outputs[0]}) {
    if (const Tensor* t = constant(g, {*name}, 0)) return t->dtype() == DataType::kFloat;
    const ValueInfo* v = find_value_info(g, *name);
    if (v && v->dtype != DataType::kUndefined) return v->dtype == DataType::kFloat;
  }
  return false;
}

}  // namespace

// MatMul -> ai.hearth FusedMatMul, absorbing what PyTorch exports around it:
//   - a scale by a scalar constant on either input (Div / Mul) -> alpha;
//   - a Transpose feeding either input -> perm_a / perm_b (read through strides),
//     when the transposed operand keeps a unit-stride dim among its last two;
//   - with constant 2-D float weights and alpha 1: an Add of a bias, then GELU.
int fuse_matmuls(Graph& g) {
  int fused = 0;
  std::vector<bool> dead(g.nodes.size(), false);
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& o : g.nodes[i].outputs) producer[o] = i;
  auto live_producer = [&](const std::string& v) -> size_t {
    auto it = producer.find(v);
    if (it == producer.end() || dead[it->second] || !is_default(g.nodes[it->second])) return SIZE_MAX;
    return it->second;
  };
  Uses uses(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (dead[i] || !is_default(g.nodes[i]) || g.nodes[i].op_type != "MatMul" || g.nodes[i].inputs.size() != 2)
      continue;
    if (!known_float(g, g.nodes[i])) continue;  // FusedMatMul is float32 only
    std::vector<size_t> absorbed;  // nodes folded into this MatMul, removed only if it is rewritten
    float alpha = 1.0f;
    std::vector<int64_t> perms[2];
    std::string ins[2] = {g.nodes[i].inputs[0], g.nodes[i].inputs[1]};
    for (int k = 0; k < 2; ++k) {
      size_t reader = i;  // the node now reading ins[k] (i, or a node absorbed into it)
      size_t p = uses.sole_reader(ins[k]) == reader ? live_producer(ins[k]) : SIZE_MAX;
      float c = 0;
      if (p != SIZE_MAX && g.nodes[p].inputs.size() == 2) {
        const Node& n = g.nodes[p];
        if (n.op_type == "Div" && scalar_value(g, n.inputs[1], &c) && c != 0.0f && !constant(g, n.inputs, 0)) {
          alpha /= c;
        } else if (n.op_type == "Mul" && scalar_value(g, n.inputs[1], &c) && !constant(g, n.inputs, 0)) {
          alpha *= c;
        } else if (n.op_type == "Mul" && scalar_value(g, n.inputs[0], &c) && !constant(g, n.inputs, 1)) {
          alpha *= c;
          ins[k] = n.inputs[1];
          absorbed.push_back(p);
          reader = p;
          p = SIZE_MAX;
        } else {
          p = SIZE_MAX;
        }
        if (p != SIZE_MAX) {
          ins[k] = n.inputs[0];
          absorbed.push_back(p);
          reader = p;
        }
      }
      p = uses.sole_reader(ins[k]) == reader ? live_producer(ins[k]) : SIZE_MAX;
      if (p != SIZE_MAX && g.nodes[p].op_type == "Transpose" && g.nodes[p].has_attr("perm")) {
        const std::vector<int64_t> perm = g.nodes[p].attr_ints("perm");
        const int64_t r = static_cast<int64_t>(perm.size());
        if (r >= 2 && (perm[r - 1] == r - 1 || perm[r - 2] == r - 1)) {
          perms[k] = perm;
          ins[k] = g.nodes[p].inputs[0];
          absorbed.push_back(p);
        }
      }
    }
    std::string out = g.nodes[i].outputs[0], bias;
    std::vector<size_t> gelu_nodes;
    std::string gelu_out;
    bool gelu = false, gelu_tanh = false;
    const Tensor* w = constant(g, {ins[1]}, 0);
    if (alpha == 1.0f && perms[1].empty() && w && w->dtype() == DataType::kFloat && w->rank() == 2) {
      const size_t next = uses.sole_reader(out);
      if (const Node* add = live_node(g, next, dead, "Add")) {
        const std::string c = other_input(*add, out);
        if (!c.empty() && c != out && matmul_bias(g, c, ins[0], w->dim(1))) {
          bias = c;
          dead[next] = true;
          out = add->outputs[0];
        }
      }
      gelu = gelu_after(g, uses, out, dead, &gelu_nodes, &gelu_out);
      gelu_tanh = !gelu && gelu_tanh_after(g, uses, out, dead, &gelu_nodes, &gelu_out);
    }
    if (!gelu && !gelu_tanh && bias.empty() && alpha == 1.0f && perms[0].empty() && perms[1].empty()) continue;
    for (size_t k : absorbed) dead[k] = true;
    Node& mm = g.nodes[i];
    mm.op_type = "FusedMatMul";
    mm.domain = "ai.hearth";
    uses.drop_reads(i, mm);
    mm.inputs = {ins[0], ins[1]};
    if (!bias.empty()) mm.inputs.push_back(bias);
    uses.add_reads(i, mm);
    if (alpha != 1.0f) mm.set_attr_float("alpha", alpha);
    if (!perms[0].empty()) mm.set_attr_ints("perm_a", perms[0]);
    if (!perms[1].empty()) mm.set_attr_ints("perm_b", perms[1]);
    if (gelu || gelu_tanh) {
      for (size_t k : gelu_nodes) dead[k] = true;
      out = gelu_out;
      mm.set_attr_string("activation", gelu ? "Gelu" : "GeluTanh");
    }
    mm.outputs[0] = out;
    ++fused;
  }
  erase_dead(g, dead);
  return fused;
}

}  // namespace hearth
