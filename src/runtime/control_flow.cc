#include "runtime/control_flow.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "runtime/session.h"

namespace hearth {

namespace {

thread_local int t_budget_depth = 0;
thread_local int64_t t_budget = kDefaultLoopIterations;
thread_local int64_t t_iterations_left = kDefaultLoopIterations;

// Takes one iteration from the run's budget; an error naming the node when it is spent.
Status take_iteration(const Node& node) {
  if (--t_iterations_left < 0) {
    return resource_exhausted(node.describe(), ": the run has used its budget of ", t_budget,
                              " Loop and Scan iterations (nested loops count together; max_loop_iterations)");
  }
  return ok_status();
}

// A subgraph prepared as a Session whose inputs are its formal inputs followed by
// the outer-scope values it reads.
struct Subgraph {
  std::unique_ptr<Session> session;
  std::vector<std::string> formal_inputs;
  std::vector<std::string> outer;  // free variables, fed from the implicit inputs
};

Result<Subgraph> prepare_subgraph(const Graph& g, const std::map<std::string, int64_t>& opsets,
                                  const SessionOptions& options, const std::string& what) {
  Subgraph sub;
  Model m;
  m.opsets = opsets;
  m.graph = g;
  // Loop-carried values may change shape between iterations: keep dtypes, drop shapes.
  for (auto& in : m.graph.inputs) {
    in.has_shape = false;
    sub.formal_inputs.push_back(in.name);
  }
  sub.outer = free_variables(g);
  for (const auto& name : sub.outer) {
    ValueInfo v;
    v.name = name;
    m.graph.inputs.push_back(v);
  }
  HEARTH_RETURN_IF_ERROR(topological_sort(m.graph).with_context(what));
  SessionOptions sub_options = options;
  sub_options.profile = false;
  auto s = Session::create(std::move(m), sub_options);
  if (!s.ok()) return s.status().with_context(what);
  sub.session = std::move(s).value();
  return sub;
}

const Graph* graph_attr(const Node& node, const char* name) {
  const Attribute* a = node.attr(name);
  return a && a->type == Attribute::Type::kGraph ? a->g.get() : nullptr;
}

// Base for the three ops: maps implicit inputs to each subgraph's outer names.
class ControlFlowKernel : public Kernel {
 protected:
  std::vector<std::string> implicit_;

  Status add_outer_feeds(const Subgraph& sub, KernelContext& ctx, std::vector<std::pair<std::string, Tensor>>& feeds) {
    const size_t declared = ctx.node().inputs.size();
    for (const auto& name : sub.outer) {
      auto it = std::lower_bound(implicit_.begin(), implicit_.end(), name);
      const Tensor* t = ctx.input(declared + static_cast<size_t>(it - implicit_.begin()));
      if (!t) return internal_error(ctx.node().describe(), ": outer value '", name, "' is not available");
      feeds.emplace_back(name, *t);
    }
    return ok_status();
  }
};

class IfKernel final : public ControlFlowKernel {
 public:
  Status setup(const Node& node, const std::map<std::string, int64_t>& opsets, const SessionOptions& options) {
    implicit_ = control_flow_implicit_inputs(node);
    const Graph* then_g = graph_attr(node, "then_branch");
    const Graph* else_g = graph_attr(node, "else_branch");
    if (!then_g || !else_g) return invalid_argument(node.describe(), ": If needs then_branch and else_branch graphs");
    HEARTH_ASSIGN_OR_RETURN(then_, prepare_subgraph(*then_g, opsets, options, node.describe() + " then_branch"));
    HEARTH_ASSIGN_OR_RETURN(else_, prepare_subgraph(*else_g, opsets, options, node.describe() + " else_branch"));
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* cond = ctx.input(0);
    if (!cond || cond->numel() != 1 || cond->dtype() != DataType::kBool) {
      return invalid_argument(ctx.node().describe(), ": condition must be a single bool");
    }
    Subgraph& branch = cond->data<bool>()[0] ? then_ : else_;
    std::vector<std::pair<std::string, Tensor>> feeds;
    HEARTH_RETURN_IF_ERROR(add_outer_feeds(branch, ctx, feeds));
    HEARTH_ASSIGN_OR_RETURN(auto outs, branch.session->run(feeds));
    if (outs.size() != ctx.num_outputs()) {
      return invalid_argument(ctx.node().describe(), ": branch produced ", outs.size(), " outputs, node has ",
                              ctx.num_outputs());
    }
    for (size_t i = 0; i < outs.size(); ++i) ctx.set_output(i, std::move(outs[i]));
    return ok_status();
  }

 private:
  Subgraph then_, else_;
};

// Stacks equally shaped tensors along a new axis `axis`.
Result<Tensor> stack(const std::vector<Tensor>& parts, int64_t axis, Allocator* alloc, const std::string& what) {
  const Tensor& first = parts.front();
  for (const auto& p : parts) {
    if (p.shape() != first.shape() || p.dtype() != first.dtype()) {
      return invalid_argument(what, ": scan outputs change shape between iterations (", first.describe(), " vs ",
                              p.describe(), ")");
    }
  }
  const int64_t rank = static_cast<int64_t>(first.rank());
  if (axis < 0) axis += rank + 1;
  if (axis < 0 || axis > rank) return invalid_argument(what, ": scan output axis out of range");
  Shape shape = first.shape();
  shape.insert(shape.begin() + axis, static_cast<int64_t>(parts.size()));
  Tensor out(first.dtype(), shape, alloc);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= first.dim(i);
  for (int64_t i = axis; i < rank; ++i) inner *= first.dim(i);
  const size_t row = static_cast<size_t>(inner) * dtype_size(first.dtype());
  auto* dst = static_cast<char*>(out.raw_data());
  for (int64_t o = 0; o < outer; ++o)
    for (size_t t = 0; t < parts.size(); ++t)
      std::memcpy(dst + (o * static_cast<int64_t>(parts.size()) + static_cast<int64_t>(t)) * row,
                  static_cast<const char*>(parts[t].raw_data()) + o * row, row);
  return out;
}

class LoopKernel final : public ControlFlowKernel {
 public:
  Status setup(const Node& node, const std::map<std::string, int64_t>& opsets, const SessionOptions& options) {
    implicit_ = control_flow_implicit_inputs(node);
    const Graph* body = graph_attr(node, "body");
    if (!body) return invalid_argument(node.describe(), ": Loop needs a body graph");
    HEARTH_ASSIGN_OR_RETURN(body_, prepare_subgraph(*body, opsets, options, node.describe() + " body"));
    if (body_.formal_inputs.size() < 2) return invalid_argument(node.describe(), ": Loop body needs >= 2 inputs");
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const size_t carried = node.inputs.size() >= 2 ? node.inputs.size() - 2 : 0;
    if (body_.formal_inputs.size() != carried + 2) {
      return invalid_argument(node.describe(), ": body takes ", body_.formal_inputs.size(), " inputs, expected ", carried + 2);
    }
    int64_t max_trip = INT64_MAX;
    if (const Tensor* m = ctx.input(0)) {
      HEARTH_ASSIGN_OR_RETURN(auto v, tensor_to_int64s(*m));
      if (v.size() != 1) return invalid_argument(node.describe(), ": M must be a scalar");
      max_trip = v[0];
    }
    bool cond = true;
    if (const Tensor* c = ctx.input(1)) {
      if (c->dtype() != DataType::kBool || c->numel() != 1) return invalid_argument(node.describe(), ": cond must be a bool scalar");
      cond = c->data<bool>()[0];
    }
    std::vector<Tensor> state;
    for (size_t i = 0; i < carried; ++i) {
      const Tensor* t = ctx.input(2 + i);
      if (!t) return invalid_argument(node.describe(), ": loop-carried input ", i, " is missing");
      state.push_back(*t);
    }
    if (ctx.num_outputs() < carried) {
      return invalid_argument(node.describe(), ": ", carried, " loop-carried values but only ", ctx.num_outputs(),
                              " outputs");
    }
    const size_t scans = ctx.num_outputs() - carried;
    std::vector<std::vector<Tensor>> scan_parts(scans);
    for (int64_t i = 0; i < max_trip && cond; ++i) {
      HEARTH_RETURN_IF_ERROR(take_iteration(node));
      std::vector<std::pair<std::string, Tensor>> feeds;
      feeds.emplace_back(body_.formal_inputs[0], Tensor::scalar<int64_t>(i));
      feeds.emplace_back(body_.formal_inputs[1], Tensor::scalar<bool>(cond));
      for (size_t k = 0; k < carried; ++k) feeds.emplace_back(body_.formal_inputs[2 + k], state[k]);
      HEARTH_RETURN_IF_ERROR(add_outer_feeds(body_, ctx, feeds));
      HEARTH_ASSIGN_OR_RETURN(auto outs, body_.session->run(feeds));
      if (outs.size() != 1 + carried + scans) {
        return invalid_argument(node.describe(), ": body produced ", outs.size(), " outputs, expected ", 1 + carried + scans);
      }
      if (outs[0].dtype() != DataType::kBool || outs[0].numel() != 1) {
        return invalid_argument(node.describe(), ": body's condition output must be a bool scalar");
      }
      cond = outs[0].data<bool>()[0];
      for (size_t k = 0; k < carried; ++k) state[k] = std::move(outs[1 + k]);
      for (size_t k = 0; k < scans; ++k) scan_parts[k].push_back(std::move(outs[1 + carried + k]));
    }
    for (size_t k = 0; k < carried; ++k) ctx.set_output(k, state[k]);
    for (size_t k = 0; k < scans; ++k) {
      if (scan_parts[k].empty()) {
        ctx.allocate_output(carried + k, DataType::kFloat, {0});
        continue;
      }
      HEARTH_ASSIGN_OR_RETURN(Tensor t, stack(scan_parts[k], 0, ctx.allocator(), node.describe()));
      ctx.set_output(carried + k, std::move(t));
    }
    return ok_status();
  }

 private:
  Subgraph body_;
};

// Slice `index` of `t` along `axis`, with that axis removed.
Tensor take_slice(const Tensor& t, int64_t axis, int64_t index, Allocator* alloc) {
  Shape shape = t.shape();
  const int64_t len = shape[axis];
  shape.erase(shape.begin() + axis);
  Tensor out(t.dtype(), shape, alloc);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= t.dim(i);
  for (size_t i = axis + 1; i < t.rank(); ++i) inner *= t.dim(i);
  const size_t row = static_cast<size_t>(inner) * dtype_size(t.dtype());
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(static_cast<char*>(out.raw_data()) + o * row,
                static_cast<const char*>(t.raw_data()) + (o * len + index) * row, row);
  return out;
}

class ScanKernel final : public ControlFlowKernel {
 public:
  Status setup(const Node& node, const std::map<std::string, int64_t>& opsets, int64_t opset,
               const SessionOptions& options) {
    implicit_ = control_flow_implicit_inputs(node);
    batched_ = opset < 9;  // opset 8: leading batch dim and optional sequence_lens input
    const Graph* body = graph_attr(node, "body");
    if (!body) return invalid_argument(node.describe(), ": Scan needs a body graph");
    HEARTH_ASSIGN_OR_RETURN(body_, prepare_subgraph(*body, opsets, options, node.describe() + " body"));
    num_scan_inputs_ = node.attr_int("num_scan_inputs", -1);
    const int64_t data_inputs = static_cast<int64_t>(node.inputs.size()) - (batched_ ? 1 : 0);
    if (num_scan_inputs_ < 1 || num_scan_inputs_ > data_inputs) {
      return invalid_argument(node.describe(), ": num_scan_inputs must be between 1 and the number of inputs");
    }
    input_axes_ = node.attr_ints("scan_input_axes");
    input_dirs_ = node.attr_ints(batched_ ? "directions" : "scan_input_directions");
    output_axes_ = node.attr_ints("scan_output_axes");
    output_dirs_ = node.attr_ints("scan_output_directions");
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const size_t first = batched_ ? 1 : 0;
    const size_t m = static_cast<size_t>(num_scan_inputs_);
    const size_t n = ctx.node().inputs.size() - first - m;  // state variables (setup keeps this >= 0)
    if (ctx.num_outputs() < n) {
      return invalid_argument(ctx.node().describe(), ": ", n, " state variables but only ", ctx.num_outputs(),
                              " outputs");
    }
    std::vector<Tensor> states, scans;
    for (size_t i = 0; i < n + m; ++i) {
      const Tensor* t = ctx.input(first + i);
      if (!t) return invalid_argument(ctx.node().describe(), ": input ", first + i, " is missing");
      (i < n ? states : scans).push_back(*t);
    }
    if (!batched_) {
      HEARTH_ASSIGN_OR_RETURN(auto outs, scan(ctx, states, scans));
      for (size_t i = 0; i < outs.size(); ++i) ctx.set_output(i, std::move(outs[i]));
      return ok_status();
    }
    // Opset 8: run each batch entry on its own, then stack results along axis 0.
    const int64_t batch = scans[0].rank() > 0 ? scans[0].dim(0) : 0;
    for (const auto* group : {&states, &scans}) {
      for (const Tensor& t : *group) {
        if (t.rank() < 1 || t.dim(0) != batch) {
          return invalid_argument(ctx.node().describe(), ": Scan-8 input ", t.describe(),
                                  " does not have the batch size ", batch, " as its first dim");
        }
      }
    }
    if (const Tensor* lens = ctx.input(0)) {
      HEARTH_ASSIGN_OR_RETURN(auto v, tensor_to_int64s(*lens));
      for (int64_t len : v)
        if (scans[0].rank() < 2 || len != scans[0].dim(1))
          return unimplemented(ctx.node().describe(), ": Scan-8 with sequence_lens shorter than the input");
    }
    std::vector<std::vector<Tensor>> per_output(ctx.num_outputs());
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<Tensor> st, sc;
      for (const auto& t : states) st.push_back(take_slice(t, 0, b, ctx.allocator()));
      for (const auto& t : scans) sc.push_back(take_slice(t, 0, b, ctx.allocator()));
      HEARTH_ASSIGN_OR_RETURN(auto outs, scan(ctx, st, sc));
      for (size_t i = 0; i < outs.size(); ++i) per_output[i].push_back(std::move(outs[i]));
    }
    for (size_t i = 0; i < per_output.size(); ++i) {
      if (per_output[i].empty()) return invalid_argument(ctx.node().describe(), ": empty batch");
      HEARTH_ASSIGN_OR_RETURN(Tensor t, stack(per_output[i], 0, ctx.allocator(), ctx.node().describe()));
      ctx.set_output(i, std::move(t));
    }
    return ok_status();
  }

 private:
  // One scan over `scans` (sliced along their scan axes): final states, then stacked scan outputs.
  Result<std::vector<Tensor>> scan(KernelContext& ctx, std::vector<Tensor> state, const std::vector<Tensor>& scans) {
    const Node& node = ctx.node();
    const size_t n = state.size(), m = scans.size();
    const size_t k = ctx.num_outputs() - n;
    int64_t length = -1;
    std::vector<int64_t> axes(m, 0);
    for (size_t j = 0; j < m; ++j) {
      const Tensor& x = scans[j];
      int64_t axis = j < input_axes_.size() ? input_axes_[j] : 0;
      if (axis < 0) axis += static_cast<int64_t>(x.rank());
      if (axis < 0 || axis >= static_cast<int64_t>(x.rank())) return invalid_argument(node.describe(), ": scan input axis out of range");
      axes[j] = axis;
      if (length >= 0 && x.dim(axis) != length) return invalid_argument(node.describe(), ": scan inputs differ in length");
      length = x.dim(axis);
    }
    std::vector<std::vector<Tensor>> parts(k);
    for (int64_t t = 0; t < length; ++t) {
      HEARTH_RETURN_IF_ERROR(take_iteration(node));
      std::vector<std::pair<std::string, Tensor>> feeds;
      for (size_t i = 0; i < n; ++i) feeds.emplace_back(body_.formal_inputs.at(i), state[i]);
      for (size_t j = 0; j < m; ++j) {
        const bool reverse = j < input_dirs_.size() && input_dirs_[j] == 1;
        feeds.emplace_back(body_.formal_inputs.at(n + j), take_slice(scans[j], axes[j], reverse ? length - 1 - t : t, ctx.allocator()));
      }
      HEARTH_RETURN_IF_ERROR(add_outer_feeds(body_, ctx, feeds));
      HEARTH_ASSIGN_OR_RETURN(auto outs, body_.session->run(feeds));
      if (outs.size() != n + k) return invalid_argument(node.describe(), ": body produced ", outs.size(), " outputs");
      for (size_t i = 0; i < n; ++i) state[i] = std::move(outs[i]);
      for (size_t i = 0; i < k; ++i) parts[i].push_back(std::move(outs[n + i]));
    }
    std::vector<Tensor> result = std::move(state);
    for (size_t i = 0; i < k; ++i) {
      if (parts[i].empty()) {
        result.push_back(Tensor(DataType::kFloat, {0}, ctx.allocator()));
        continue;
      }
      if (i < output_dirs_.size() && output_dirs_[i] == 1) std::reverse(parts[i].begin(), parts[i].end());
      int64_t axis = i < output_axes_.size() ? output_axes_[i] : 0;
      HEARTH_ASSIGN_OR_RETURN(Tensor out, stack(parts[i], axis, ctx.allocator(), node.describe()));
      result.push_back(std::move(out));
    }
    return result;
  }

  Subgraph body_;
  bool batched_ = false;
  int64_t num_scan_inputs_ = 0;
  std::vector<int64_t> input_axes_, input_dirs_, output_axes_, output_dirs_;
};

}  // namespace

IterationBudgetScope::IterationBudgetScope(int64_t budget) {
  if (t_budget_depth++ == 0) t_budget = t_iterations_left = budget;
}

IterationBudgetScope::~IterationBudgetScope() { --t_budget_depth; }

bool is_control_flow_op(const Node& node) {
  return node.domain.empty() && (node.op_type == "If" || node.op_type == "Loop" || node.op_type == "Scan");
}

std::vector<std::string> control_flow_implicit_inputs(const Node& node) {
  std::set<std::string> names;
  for (const auto& [name, a] : node.attributes)
    if (a.type == Attribute::Type::kGraph && a.g)
      for (auto& v : free_variables(*a.g)) names.insert(v);
  return {names.begin(), names.end()};
}

Result<std::unique_ptr<Kernel>> make_control_flow_kernel(const Node& node, const std::map<std::string, int64_t>& opsets,
                                                         int64_t opset, const SessionOptions& options) {
  if (node.op_type == "If") {
    auto k = std::make_unique<IfKernel>();
    HEARTH_RETURN_IF_ERROR(k->setup(node, opsets, options));
    return std::unique_ptr<Kernel>(std::move(k));
  }
  if (node.op_type == "Loop") {
    auto k = std::make_unique<LoopKernel>();
    HEARTH_RETURN_IF_ERROR(k->setup(node, opsets, options));
    return std::unique_ptr<Kernel>(std::move(k));
  }
  auto k = std::make_unique<ScanKernel>();
  HEARTH_RETURN_IF_ERROR(k->setup(node, opsets, opset, options));
  return std::unique_ptr<Kernel>(std::move(k));
}

}  // namespace hearth
