// Control-flow ops (If, Loop, Scan): kernels that run subgraphs. They live in
// the runtime layer because each subgraph runs as a nested Session. Values the
// subgraphs read from enclosing scopes arrive as extra ("implicit") inputs after
// the node's declared inputs, in the order of control_flow_implicit_inputs().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "graph/graph.h"
#include "kernels/kernel.h"

namespace hearth {

struct SessionOptions;

bool is_control_flow_op(const Node& node);

// Outer-scope names the node's subgraphs read, sorted.
std::vector<std::string> control_flow_implicit_inputs(const Node& node);

// Loop and Scan iterations share one budget per top-level run, however deeply their
// bodies nest (a hostile model's nested Loops would otherwise multiply their trip
// counts). Session::run holds a scope for its whole run; nested sessions run on the
// same thread inside it, so the budget lives in thread-local state and is set when
// the outermost scope opens (SessionOptions::max_loop_iterations).
constexpr int64_t kDefaultLoopIterations = int64_t{1} << 24;
class IterationBudgetScope {
 public:
  explicit IterationBudgetScope(int64_t budget);
  ~IterationBudgetScope();
  IterationBudgetScope(const IterationBudgetScope&) = delete;
  IterationBudgetScope& operator=(const IterationBudgetScope&) = delete;
};

// Creates the kernel for an If/Loop/Scan node of a model with `opsets`.
Result<std::unique_ptr<Kernel>> make_control_flow_kernel(const Node& node, const std::map<std::string, int64_t>& opsets,
                                                         int64_t opset, const SessionOptions& options);

}  // namespace hearth
