// Helpers shared by the graph rewrites of optimizer.cc's passes (fuse_conv.cc,
// fuse_matmul.cc, fuse_layer_norm.cc): who reads each value, constants, value
// types, and small pattern-matching pieces. Internal to src/graph.
#pragma once

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "graph/optimizer.h"

namespace hearth {

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
void erase_dead(Graph& g, const std::vector<bool>& dead);

// The initializer feeding inputs[i], or nullptr when it is computed, absent, or one
// a caller may override.
const Tensor* constant(const Graph& g, const std::vector<std::string>& inputs, size_t i);

// A node of the default ONNX domain (the only ones the passes match).
bool is_default(const Node& n);

// The declared or inferred type of a value: an intermediate, a graph input or a graph output.
const ValueInfo* find_value_info(const Graph& g, const std::string& name);

// Two values whose inferred shapes are known and identical (symbolic dims by name).
bool same_known_shape(const Graph& g, const std::string& a, const std::string& b);

// A float constant of one element, of rank 0 or 1 (so that it never raises
// the rank of what it is combined with), within `tol` of `v`.
bool scalar_near(const Graph& g, const std::string& name, float v, float tol);

// The input of binary node `n` that is not `x`, or "" when `x` is not one of its two inputs.
std::string other_input(const Node& n, const std::string& x);

// Node `idx` when it is not dead and is the default-domain `op`; else nullptr.
const Node* live_node(const Graph& g, size_t idx, const std::vector<bool>& dead, const char* op);

// The single live reader of `v` when it is a default-domain `op` (and `v` is no graph output).
size_t only_reader(const Graph& g, const Uses& uses, const std::string& v, const std::vector<bool>& dead,
                   const char* op);

// A float constant of one element and rank 0 or 1 (its value in *v).
bool scalar_value(const Graph& g, const std::string& name, float* v);

// The passes, in the order optimize_graph runs them; each returns how many
// rewrites it made.
// Conv [+ BatchNormalization] [+ residual Add] [+ activation] -> Conv / com.microsoft FusedConv.
void fuse_convs(Model& model, OptimizerStats& stats);
int fuse_layer_norms(Graph& g);
int fuse_matmuls(Graph& g);

}  // namespace hearth
