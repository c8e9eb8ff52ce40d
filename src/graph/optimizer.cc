#include "graph/optimizer.h"

#include "graph/nchwc.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace hearth {

namespace {

// Who reads each value: (node index, input index). Graph outputs count as readers.
// Built once per pass and kept current as rewrites change a node's inputs
// (drop_reads before, add_reads after): rebuilding it per candidate made a load
// quadratic in the number of nodes (a file of 100k Convs took an hour to load).
struct Uses {
  std::map<std::string, std::set<std::pair<size_t, size_t>>> readers;
  std::set<std::string> graph_outputs;

  explicit Uses(const Graph& g) {
    for (size_t i = 0; i < g.nodes.size(); ++i) add_reads(i, g.nodes[i]);
    for (const auto& o : g.outputs) graph_outputs.insert(o.name);
    for (const auto& n : g.nodes)  // subgraph reads count too
      for (const auto& [name, a] : n.attributes)
        if (a.type == Attribute::Type::kGraph && a.g)
          for (const auto& v : free_variables(*a.g)) readers[v].emplace(SIZE_MAX, 0);
  }
  void add_reads(size_t i, const Node& n) {
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (!n.inputs[k].empty()) readers[n.inputs[k]].emplace(i, k);
  }
  void drop_reads(size_t i, const Node& n) {
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (!n.inputs[k].empty()) readers[n.inputs[k]].erase({i, k});
  }
  // The single node reading `value`, or SIZE_MAX when there are several, none, or it is an output.
  size_t sole_reader(const std::string& value) const {
    if (graph_outputs.count(value)) return SIZE_MAX;
    auto it = readers.find(value);
    if (it == readers.end() || it->second.size() != 1) return SIZE_MAX;
    return it->second.begin()->first;
  }
};

// Removes the nodes a rewrite marked dead, keeping the others in order.
void erase_dead(Graph& g, const std::vector<bool>& dead) {
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!dead[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
}

const Tensor* constant(const Graph& g, const std::vector<std::string>& inputs, size_t i) {
  if (i >= inputs.size() || inputs[i].empty()) return nullptr;
  auto it = g.initializers.find(inputs[i]);
  if (it == g.initializers.end()) return nullptr;
  for (const auto& v : g.overridable_initializers)
    if (v.name == inputs[i]) return nullptr;
  return &it->second;
}

bool is_default(const Node& n) { return n.domain.empty(); }

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

// The declared or inferred type of a value: an intermediate, a graph input or a graph output.
const ValueInfo* find_value_info(const Graph& g, const std::string& name) {
  auto it = g.value_info.find(name);
  if (it != g.value_info.end()) return &it->second;
  for (const auto* list : {&g.inputs, &g.outputs})
    for (const auto& v : *list)
      if (v.name == name) return &v;
  return nullptr;
}

// Two values whose inferred shapes are known and identical (symbolic dims by name).
bool same_known_shape(const Graph& g, const std::string& a, const std::string& b) {
  const ValueInfo* ia = find_value_info(g, a);
  const ValueInfo* ib = find_value_info(g, b);
  if (!ia || !ib) return false;
  const ValueInfo& x = *ia;
  const ValueInfo& y = *ib;
  if (!x.has_shape || !y.has_shape || x.dims.size() != y.dims.size() || x.dims.empty()) return false;
  for (size_t i = 0; i < x.dims.size(); ++i) {
    if (x.dims[i] != y.dims[i]) return false;
    if (x.dims[i] < 0 && (x.dim_names[i].empty() || x.dim_names[i] != y.dim_names[i])) return false;
  }
  return true;
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

// A float constant of one element, of rank 0 or 1 (so that it never raises
// the rank of what it is combined with), within `tol` of `v`.
bool scalar_near(const Graph& g, const std::string& name, float v, float tol) {
  const Tensor* t = constant(g, {name}, 0);
  return t && t->dtype() == DataType::kFloat && t->numel() == 1 && t->rank() <= 1 &&
         std::fabs(t->data<float>()[0] - v) <= tol;
}

// The input of binary node `n` that is not `x`, or "" when `x` is not one of its two inputs.
std::string other_input(const Node& n, const std::string& x) {
  if (n.inputs.size() != 2) return "";
  if (n.inputs[0] == x) return n.inputs[1];
  if (n.inputs[1] == x) return n.inputs[0];
  return "";
}

const Node* live_node(const Graph& g, size_t idx, const std::vector<bool>& dead, const char* op) {
  if (idx == SIZE_MAX || dead[idx] || !is_default(g.nodes[idx]) || g.nodes[idx].op_type != op) return nullptr;
  return &g.nodes[idx];
}

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

// The single live reader of `v` when it is a default-domain `op` (and `v` is no graph output).
size_t only_reader(const Graph& g, const Uses& uses, const std::string& v, const std::vector<bool>& dead,
                   const char* op) {
  const size_t r = uses.sole_reader(v);
  return live_node(g, r, dead, op) ? r : SIZE_MAX;
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

Attribute attr_ints(const std::string& name, std::vector<int64_t> v) {
  Attribute a;
  a.name = name;
  a.type = Attribute::Type::kInts;
  a.ints = std::move(v);
  return a;
}

// A float constant of one element and rank 0 or 1 (its value in *v).
bool scalar_value(const Graph& g, const std::string& name, float* v) {
  const Tensor* t = constant(g, {name}, 0);
  if (!t || t->dtype() != DataType::kFloat || t->numel() != 1 || t->rank() > 1) return false;
  *v = t->data<float>()[0];
  return true;
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
    if (alpha != 1.0f) {
      Attribute a;
      a.name = "alpha";
      a.type = Attribute::Type::kFloat;
      a.f = alpha;
      mm.attributes["alpha"] = a;
    }
    if (!perms[0].empty()) mm.attributes["perm_a"] = attr_ints("perm_a", perms[0]);
    if (!perms[1].empty()) mm.attributes["perm_b"] = attr_ints("perm_b", perms[1]);
    if (gelu || gelu_tanh) {
      for (size_t k : gelu_nodes) dead[k] = true;
      out = gelu_out;
      Attribute a;
      a.name = "activation";
      a.type = Attribute::Type::kString;
      a.s = gelu ? "Gelu" : "GeluTanh";
      mm.attributes["activation"] = a;
    }
    mm.outputs[0] = out;
    ++fused;
  }
  erase_dead(g, dead);
  return fused;
}

// True when ReduceMean `n` averages over the last axis of `x` only, keeping dims
// (axes as an attribute: the opsets Hearth reads, up to 17, have no axes input).
bool mean_over_last_axis(const Graph& g, const Node& n, const std::string& x) {
  const std::vector<int64_t> axes = n.attr_ints("axes");
  if (n.attr_int("keepdims", 1) != 1 || n.inputs.size() != 1 || axes.size() != 1) return false;
  if (axes[0] == -1) return true;
  const ValueInfo* v = find_value_info(g, x);
  return v && v->has_shape && axes[0] == static_cast<int64_t>(v->dims.size()) - 1;
}

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
    Attribute axis;
    axis.name = "axis";
    axis.type = Attribute::Type::kInt;
    axis.i = -1;
    ln.attributes["axis"] = axis;
    Attribute epsilon;
    epsilon.name = "epsilon";
    epsilon.type = Attribute::Type::kFloat;
    epsilon.f = eps;
    ln.attributes["epsilon"] = epsilon;
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

}  // namespace

Result<OptimizerStats> optimize_graph(Model& model, bool blocked_layout) {
  Graph& g = model.graph;
  OptimizerStats stats;
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
      Attribute a;
      a.name = "activation";
      a.type = Attribute::Type::kString;
      a.s = act;
      conv.attributes["activation"] = a;
      Attribute p;
      p.name = "activation_params";
      p.type = Attribute::Type::kFloats;
      p.floats = params;
      conv.attributes["activation_params"] = p;
      conv.outputs[0] = g.nodes[act_idx].outputs[0];
      dead[act_idx] = true;
    }
    uses.add_reads(i, conv);
    ++stats.conv_fused;
    fused_any = true;
  }
  erase_dead(g, dead);
  if (fused_any && !model.opsets.count("com.microsoft")) model.opsets["com.microsoft"] = 1;
  stats.layer_norm_fused = fuse_layer_norms(g);
  stats.matmul_fused = fuse_matmuls(g);
  if (stats.matmul_fused + stats.layer_norm_fused > 0 && !model.opsets.count("ai.hearth")) {
    model.opsets["ai.hearth"] = 1;
  }
  // Rewrites can move a node's output before a later reader's producer: re-sort.
  HEARTH_RETURN_IF_ERROR(topological_sort(g));
  if (blocked_layout) {
    HEARTH_ASSIGN_OR_RETURN(stats.nchwc_nodes, apply_nchwc_layout(model));
  }
  return stats;
}

}  // namespace hearth
