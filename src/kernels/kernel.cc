#include "kernels/kernel.h"

#include "kernels/register_all.h"

namespace hearth {

const KernelDef* KernelRegistry::find(const std::string& op_type, const std::string& domain,
                                      int64_t opset) const {
  for (const auto& d : defs_) {
    if (d.op_type == op_type && d.domain == domain && opset >= d.since_version && opset <= d.until_version) return &d;
  }
  return nullptr;
}

bool KernelRegistry::knows_op(const std::string& op_type, const std::string& domain) const {
  for (const auto& d : defs_)
    if (d.op_type == op_type && d.domain == domain) return true;
  return false;
}

const KernelRegistry& KernelRegistry::global() {
  static const KernelRegistry registry = [] {
    KernelRegistry r;
    register_all_kernels(r);
    return r;
  }();
  return registry;
}

Result<int64_t> normalize_axis(int64_t axis, int64_t rank, const Node& node) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    (void)node;  // callers' contexts already name the node
    return invalid_argument(node.op_type, ": axis ", axis, " is out of range for rank ", rank);
  }
  return a;
}

}  // namespace hearth
