#include "graph/graph.h"

#include <queue>
#include <set>
#include <unordered_map>

namespace hearth {

const Attribute* Node::attr(const std::string& n) const {
  auto it = attributes.find(n);
  return it == attributes.end() ? nullptr : &it->second;
}

int64_t Node::attr_int(const std::string& n, int64_t def) const {
  const Attribute* a = attr(n);
  return a && a->type == Attribute::Type::kInt ? a->i : def;
}

float Node::attr_float(const std::string& n, float def) const {
  const Attribute* a = attr(n);
  if (!a) return def;
  if (a->type == Attribute::Type::kFloat) return a->f;
  if (a->type == Attribute::Type::kInt) return static_cast<float>(a->i);
  return def;
}

std::string Node::attr_string(const std::string& n, const std::string& def) const {
  const Attribute* a = attr(n);
  return a && a->type == Attribute::Type::kString ? a->s : def;
}

std::vector<int64_t> Node::attr_ints(const std::string& n, const std::vector<int64_t>& def) const {
  const Attribute* a = attr(n);
  return a && a->type == Attribute::Type::kInts ? a->ints : def;
}

std::vector<float> Node::attr_floats(const std::string& n, const std::vector<float>& def) const {
  const Attribute* a = attr(n);
  return a && a->type == Attribute::Type::kFloats ? a->floats : def;
}

namespace {
Attribute& attribute_of(Node& n, const std::string& name, Attribute::Type type) {
  Attribute& a = n.attributes[name];
  a = Attribute{};
  a.name = name;
  a.type = type;
  return a;
}
}  // namespace

void Node::set_attr_int(const std::string& n, int64_t v) { attribute_of(*this, n, Attribute::Type::kInt).i = v; }
void Node::set_attr_float(const std::string& n, float v) { attribute_of(*this, n, Attribute::Type::kFloat).f = v; }
void Node::set_attr_string(const std::string& n, std::string v) {
  attribute_of(*this, n, Attribute::Type::kString).s = std::move(v);
}
void Node::set_attr_ints(const std::string& n, std::vector<int64_t> v) {
  attribute_of(*this, n, Attribute::Type::kInts).ints = std::move(v);
}
void Node::set_attr_floats(const std::string& n, std::vector<float> v) {
  attribute_of(*this, n, Attribute::Type::kFloats).floats = std::move(v);
}

std::string Node::describe() const {
  std::string d = domain.empty() ? op_type : domain + "." + op_type;
  return d + " node '" + name + "'";
}

std::string ValueInfo::describe() const {
  std::string s = dtype_name(dtype);
  if (!has_shape) return s + "[?]";
  s += "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    if (dims[i] >= 0) s += std::to_string(dims[i]);
    else s += (i < dim_names.size() && !dim_names[i].empty()) ? dim_names[i] : "?";
  }
  return s + "]";
}

std::vector<std::string> free_variables(const Graph& graph) {
  std::set<std::string> defined;
  for (const auto& in : graph.inputs) defined.insert(in.name);
  for (const auto& in : graph.overridable_initializers) defined.insert(in.name);
  for (const auto& [name, t] : graph.initializers) defined.insert(name);
  for (const auto& n : graph.nodes)
    for (const auto& out : n.outputs) defined.insert(out);
  std::set<std::string> free;
  for (const auto& n : graph.nodes) {
    for (const auto& in : n.inputs)
      if (!in.empty() && !defined.count(in)) free.insert(in);
    for (const auto& [name, a] : n.attributes) {
      if (a.type != Attribute::Type::kGraph || !a.g) continue;
      for (const auto& v : free_variables(*a.g))
        if (!defined.count(v)) free.insert(v);
    }
  }
  return {free.begin(), free.end()};
}

Status topological_sort(Graph& graph) {
  std::set<std::string> available;
  for (const auto& in : graph.inputs) available.insert(in.name);
  for (const auto& [name, t] : graph.initializers) available.insert(name);

  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const auto& out : graph.nodes[i].outputs) {
      if (out.empty()) continue;
      if (available.count(out) || !producer.emplace(out, i).second) {
        return invalid_argument("value '", out, "' is produced more than once (second: ",
                                graph.nodes[i].describe(), ")");
      }
    }
  }
  // Kahn's algorithm, stable with respect to file order.
  std::vector<int> pending(graph.nodes.size(), 0);
  std::vector<std::vector<size_t>> consumers(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    std::set<size_t> deps;
    // Control-flow nodes also read their subgraphs' outer-scope values.
    std::vector<std::string> reads = graph.nodes[i].inputs;
    for (const auto& [name, a] : graph.nodes[i].attributes) {
      if (a.type != Attribute::Type::kGraph || !a.g) continue;
      for (auto& v : free_variables(*a.g)) reads.push_back(std::move(v));
    }
    for (const auto& in : reads) {
      if (in.empty() || available.count(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end()) {
        return invalid_argument(graph.nodes[i].describe(), " reads '", in,
                                "', which is not a graph input, an initializer or any node's output");
      }
      deps.insert(it->second);
    }
    pending[i] = static_cast<int>(deps.size());
    for (size_t d : deps) consumers[d].push_back(i);
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<Node> order;
  order.reserve(graph.nodes.size());
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    for (size_t c : consumers[i])
      if (--pending[c] == 0) ready.push(c);
    order.push_back(std::move(graph.nodes[i]));
  }
  if (order.size() != graph.nodes.size()) {
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
      if (pending[i] > 0) {
        return invalid_argument("graph has a cycle through ", graph.nodes[i].describe());
      }
    }
  }
  graph.nodes = std::move(order);
  for (const auto& out : graph.outputs) {
    if (!available.count(out.name) && !producer.count(out.name)) {
      return invalid_argument("graph output '", out.name, "' is not produced by any node");
    }
  }
  return ok_status();
}

}  // namespace hearth
