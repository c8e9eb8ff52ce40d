// The in-memory model: Graph of Nodes over named Values, with initializers.
// Produced by the ONNX importer (onnx_import.h), rewritten by optimizer passes,
// consumed by the runtime planner. Plain data; no behaviour beyond lookups.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hearth {

struct Graph;

// The default ONNX domain is stored as "" ("ai.onnx" is normalized to "").
inline const std::string& normalize_domain(const std::string& d) {
  static const std::string kEmpty;
  return d == "ai.onnx" ? kEmpty : d;
}

struct Attribute {
  enum class Type { kUndefined, kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings, kTensors, kGraphs, kOther };
  std::string name;
  Type type = Type::kUndefined;
  float f = 0.0f;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::shared_ptr<Graph> g;
};

struct Node {
  std::string name;     // may be empty in the file; the importer assigns "<op>_<index>"
  std::string op_type;
  std::string domain;   // "" for the default domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;  // "" marks an omitted optional output
  std::map<std::string, Attribute> attributes;

  const Attribute* attr(const std::string& name) const;
  bool has_attr(const std::string& name) const { return attr(name) != nullptr; }
  int64_t attr_int(const std::string& name, int64_t def) const;
  float attr_float(const std::string& name, float def) const;
  std::string attr_string(const std::string& name, const std::string& def) const;
  std::vector<int64_t> attr_ints(const std::string& name, const std::vector<int64_t>& def = {}) const;
  std::vector<float> attr_floats(const std::string& name, const std::vector<float>& def = {}) const;
  // Set (or replace) an attribute, for the passes that write nodes.
  void set_attr_int(const std::string& name, int64_t v);
  void set_attr_float(const std::string& name, float v);
  void set_attr_string(const std::string& name, std::string v);
  void set_attr_ints(const std::string& name, std::vector<int64_t> v);
  void set_attr_floats(const std::string& name, std::vector<float> v);
  // "Conv node 'conv1'" for error messages.
  std::string describe() const;
};

// Type and shape of a graph input/output or intermediate value.
// dims[i] == -1 for a dynamic dimension; dim_names[i] holds its symbol if any.
struct ValueInfo {
  std::string name;
  DataType dtype = DataType::kUndefined;
  bool has_shape = false;
  std::vector<int64_t> dims;
  std::vector<std::string> dim_names;
  std::string describe() const;  // "float[N,3,224,224]"
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs;   // inputs the caller feeds (initializers excluded)
  std::vector<ValueInfo> outputs;
  std::map<std::string, Tensor> initializers;
  // Inputs listed in the file that also have an initializer: a caller may override them.
  std::vector<ValueInfo> overridable_initializers;
  std::map<std::string, ValueInfo> value_info;  // shape inference results, may be partial
};

struct Model {
  Graph graph;
  std::map<std::string, int64_t> opsets;  // domain ("" = default) -> version
  int64_t ir_version = 0;
  std::string producer_name;
  std::string producer_version;
  std::string path;  // file it came from, or "" when loaded from memory

  int64_t opset(const std::string& domain) const {
    auto it = opsets.find(domain);
    return it == opsets.end() ? 0 : it->second;
  }
};

// Names a (sub)graph reads from its enclosing scopes: read by its nodes (or
// their nested subgraphs) but not defined in it as input, initializer or node
// output. Sorted, for stable slot order.
std::vector<std::string> free_variables(const Graph& graph);

// Orders nodes so each runs after the producers of its inputs. Fails naming a
// node on a cycle, or a node whose input no one produces.
Status topological_sort(Graph& graph);

}  // namespace hearth
