// The blocked-layout pass (see nchwc.h).
#include "graph/nchwc.h"

#include <algorithm>
#include <map>
#include <set>

namespace hearth {

Shape nchwc_blocked_shape(const Shape& logical) {
  Shape b = {logical[0], logical[1] / kNchwcBlock};
  b.insert(b.end(), logical.begin() + 2, logical.end());
  b.push_back(kNchwcBlock);
  return b;
}

Result<Shape> nchwc_logical_shape(const Shape& blocked) {
  if (blocked.size() < 4 || blocked.back() != kNchwcBlock)
    return invalid_argument("a blocked-layout tensor must be [N, C/8, spatial..., 8], got ", shape_str(blocked));
  Shape l = {blocked[0], blocked[1] * kNchwcBlock};
  l.insert(l.end(), blocked.begin() + 2, blocked.end() - 1);
  return l;
}

namespace {

// Element-wise ops with one data input: they read and write any layout alike.
const std::set<std::string>& layout_free_unary() {
  static const std::set<std::string> ops = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish",
                                            "Elu",  "Selu",      "Softplus", "Softsign", "Abs", "Neg", "Exp",
                                            "Sqrt", "Erf",       "Identity", "Clip"};
  return ops;
}

const std::set<std::string>& layout_free_binary() {
  static const std::set<std::string> ops = {"Add", "Sub", "Mul", "Div"};
  return ops;
}

class NchwcPass {
 public:
  explicit NchwcPass(Model& model) : model_(model), g_(model.graph) {
    for (const auto& v : g_.inputs) names_.insert(v.name);
    for (const auto& [name, t] : g_.initializers) names_.insert(name);
    for (const auto& n : g_.nodes)
      for (const auto& o : n.outputs) names_.insert(o);
  }

  int run() {
    std::vector<Node> nodes = std::move(g_.nodes);
    g_.nodes.clear();
    for (Node& n : nodes) {
      if (!rewrite(n)) {
        for (const auto& in : n.inputs) ensure_plain(in);
        for (const auto& [name, a] : n.attributes)
          if (a.type == Attribute::Type::kGraph && a.g)
            for (const auto& v : free_variables(*a.g)) ensure_plain(v);
      }
      g_.nodes.push_back(std::move(n));
    }
    for (const auto& o : g_.outputs) ensure_plain(o.name);
    if (rewritten_ > 0) model_.opsets[kNchwcDomain] = 1;
    return rewritten_;
  }

 private:
  struct Blocked {
    std::string name;  // the blocked tensor
    int64_t channels;  // logical C
  };

  // The initializer behind `name` when it is a true constant (not overridable).
  const Tensor* constant(const std::string& name) const {
    if (name.empty()) return nullptr;
    auto it = g_.initializers.find(name);
    if (it == g_.initializers.end()) return nullptr;
    for (const auto& v : g_.overridable_initializers)
      if (v.name == name) return nullptr;
    return &it->second;
  }

  const Blocked* blocked(const std::string& name) const {
    auto it = blocked_.find(name);
    return it == blocked_.end() ? nullptr : &it->second;
  }

  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int i = 1; names_.count(name); ++i) name = base + "_" + std::to_string(i);
    names_.insert(name);
    return name;
  }

  // Marks `n`'s output 0 as blocked with `channels`; the node writes a new name.
  void block_output(Node& n, int64_t channels) {
    const std::string orig = n.outputs[0];
    n.outputs[0] = fresh(orig + "_nchwc");
    blocked_[orig] = {n.outputs[0], channels};
    ++rewritten_;
  }

  // Makes the plain value `name` available (a ReorderOutput after its blocked producer).
  void ensure_plain(const std::string& name) {
    const Blocked* b = blocked(name);
    if (!b || plain_.count(name)) return;
    Node r;
    r.name = fresh(name + "_reorder_output");
    r.op_type = "ReorderOutput";
    r.domain = kNchwcDomain;
    r.inputs = {b->name};
    r.outputs = {name};
    g_.nodes.push_back(std::move(r));
    plain_.insert(name);
  }

  // The blocked version of the plain value `name` (a ReorderInput the first time).
  std::string ensure_blocked(const std::string& name, int64_t channels) {
    if (const Blocked* b = blocked(name)) return b->name;
    Node r;
    r.name = fresh(name + "_reorder_input");
    r.op_type = "ReorderInput";
    r.domain = kNchwcDomain;
    r.inputs = {name};
    r.outputs = {fresh(name + "_nchwc")};
    blocked_[name] = {r.outputs[0], channels};
    plain_.insert(name);
    g_.nodes.push_back(r);
    return r.outputs[0];
  }

  // A float constant holding one value per channel, shaped [C, 1, 1] or [1, C, 1, 1]
  // (as a scale or bias broadcast over an [N, C, H, W] tensor).
  static bool per_channel(const Tensor* t, int64_t channels) {
    if (!t || t->dtype() != DataType::kFloat || t->rank() < 3 || t->rank() > 4 || t->numel() != channels) return false;
    const size_t r = t->rank();
    return t->dim(r - 3) == channels && t->dim(r - 2) == 1 && t->dim(r - 1) == 1;
  }

  // The [1, C/8, 1, 1, 8] form of a per-channel constant, added once per constant.
  std::string blocked_constant(const std::string& name, const Tensor& t) {
    auto it = blocked_constants_.find(name);
    if (it != blocked_constants_.end()) return it->second;
    const int64_t c = t.numel();
    Tensor b(DataType::kFloat, {1, c / kNchwcBlock, 1, 1, kNchwcBlock});
    std::copy_n(t.data<float>(), c, b.data<float>());  // [C] in channel order is already [C/8][8]
    const std::string blocked_name = fresh(name + "_nchwc");
    g_.initializers[blocked_name] = std::move(b);
    blocked_constants_[name] = blocked_name;
    return blocked_name;
  }

  // Rewrites `n` to run on blocked values when it can; false leaves it as is.
  bool rewrite(Node& n) {
    if (n.outputs.empty() || n.outputs[0].empty()) return false;
    const bool onnx = n.domain.empty();
    if ((onnx && n.op_type == "Conv") || (n.domain == "com.microsoft" && n.op_type == "FusedConv")) return conv(n);
    if (!onnx || n.inputs.empty()) return false;
    const Blocked* x = blocked(n.inputs[0]);
    if (layout_free_unary().count(n.op_type)) {
      if (!x || n.outputs.size() != 1) return false;
      for (size_t i = 1; i < n.inputs.size(); ++i)  // Clip's min / max: scalars
        if (!n.inputs[i].empty() && (!constant(n.inputs[i]) || constant(n.inputs[i])->numel() != 1)) return false;
      const int64_t c = x->channels;
      n.inputs[0] = x->name;
      block_output(n, c);
      return true;
    }
    if (layout_free_binary().count(n.op_type)) {
      if (n.inputs.size() != 2 || n.outputs.size() != 1) return false;
      const Blocked* y = blocked(n.inputs[1]);
      const Tensor* ca = constant(n.inputs[0]);
      const Tensor* cb = constant(n.inputs[1]);
      // A one-element constant of rank <= 4 leaves the (blocked) output's rank alone.
      auto scalar = [](const Tensor* t) {
        return t && t->numel() == 1 && t->rank() <= 4 && t->dtype() == DataType::kFloat;
      };
      int64_t c = 0;
      if (x && y && x->channels == y->channels) c = x->channels;  // both blocked alike: shapes broadcast alike
      else if (x && scalar(cb)) c = x->channels;
      else if (y && scalar(ca)) c = y->channels;
      else if (x && per_channel(cb, x->channels)) c = x->channels, n.inputs[1] = blocked_constant(n.inputs[1], *cb);
      else if (y && per_channel(ca, y->channels)) c = y->channels, n.inputs[0] = blocked_constant(n.inputs[0], *ca);
      else return false;
      if (x) n.inputs[0] = x->name;
      if (y) n.inputs[1] = y->name;
      block_output(n, c);
      return true;
    }
    if (!x) return false;
    if (n.op_type == "MaxPool" || n.op_type == "AveragePool") {
      if (n.outputs.size() > 1 && !n.outputs[1].empty()) return false;  // Indices
      if (n.attr_ints("kernel_shape").size() != 2) return false;
      const int64_t c = x->channels;
      n.inputs[0] = x->name;
      n.domain = kNchwcDomain;
      block_output(n, c);
      return true;
    }
    if (n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool") {
      const int64_t c = x->channels;
      n.inputs[0] = x->name;
      n.domain = kNchwcDomain;
      block_output(n, c);
      return true;
    }
    if (n.op_type == "Concat") {
      const int64_t axis = n.attr_int("axis", 0);
      if (axis != 1 && axis != -3) return false;  // blocked values are 2-D: logical rank 4
      int64_t c = 0;
      std::vector<std::string> ins;
      for (const auto& in : n.inputs) {
        const Blocked* b = blocked(in);
        if (!b) return false;
        c += b->channels;
        ins.push_back(b->name);
      }
      n.inputs = ins;
      n.set_attr_int("axis", 1);
      block_output(n, c);
      return true;
    }
    return false;
  }

  // 2-D float Conv with constant weights and a multiple of 8 output channels.
  bool conv(Node& n) {
    if (n.inputs.size() < 2 || n.outputs.size() != 1) return false;
    const Tensor* w = constant(n.inputs[1]);
    if (!w || w->dtype() != DataType::kFloat || w->rank() != 4 || w->dim(0) % kNchwcBlock != 0) return false;
    const int64_t c_out = w->dim(0);
    const Blocked* x = blocked(n.inputs[0]);
    if (n.inputs.size() > 3 && !n.inputs[3].empty()) n.inputs[3] = ensure_blocked(n.inputs[3], c_out);
    if (x) n.inputs[0] = x->name;
    if (n.op_type == "Conv") n.inputs.resize(std::min<size_t>(n.inputs.size(), 3));
    n.set_attr_int("x_blocked", x ? 1 : 0);
    n.op_type = "Conv";
    n.domain = kNchwcDomain;
    block_output(n, c_out);
    return true;
  }

  Model& model_;
  Graph& g_;
  std::set<std::string> names_;               // every value name in use
  std::map<std::string, Blocked> blocked_;    // original name -> its blocked version
  std::set<std::string> plain_;               // blocked-produced values also made plain
  int rewritten_ = 0;
  std::map<std::string, std::string> blocked_constants_;  // per-channel constant -> its blocked copy
};

}  // namespace

Result<int> apply_nchwc_layout(Model& model) {
  const int n = NchwcPass(model).run();
  if (n > 0) HEARTH_RETURN_IF_ERROR(topological_sort(model.graph));
  return n;
}

}  // namespace hearth
