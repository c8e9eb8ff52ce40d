// Shared pieces of the graph rewrites (see rewrite.h).
#include "graph/rewrite.h"

#include <cmath>

namespace hearth {

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

// The single live reader of `v` when it is a default-domain `op` (and `v` is no graph output).
size_t only_reader(const Graph& g, const Uses& uses, const std::string& v, const std::vector<bool>& dead,
                   const char* op) {
  const size_t r = uses.sole_reader(v);
  return live_node(g, r, dead, op) ? r : SIZE_MAX;
}

// A float constant of one element and rank 0 or 1 (its value in *v).
bool scalar_value(const Graph& g, const std::string& name, float* v) {
  const Tensor* t = constant(g, {name}, 0);
  if (!t || t->dtype() != DataType::kFloat || t->numel() != 1 || t->rank() > 1) return false;
  *v = t->data<float>()[0];
  return true;
}

}  // namespace hearth
