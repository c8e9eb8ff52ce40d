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

Status KernelContext::check_output_shape(DataType dtype, const Shape& shape) const {
  auto bytes = checked_extent_bytes(dtype, shape);
  if (!bytes.ok()) return bytes.status();
  if (max_tensor_bytes_ && *bytes > max_tensor_bytes_) {
    const bool empty = checked_numel(shape).value() == 0;
    return resource_exhausted(dtype_name(dtype), shape_str(shape), " needs ", *bytes,
                              empty ? " bytes counting its zero dims as ones" : " bytes", ", over the limit of ",
                              max_tensor_bytes_, " bytes for one tensor (max_tensor_bytes)");
  }
  return ok_status();
}

void KernelContext::check_output_size(size_t i, DataType dtype, const Shape& shape) const {
  if (i >= outputs_->size()) {
    throw SizeError(invalid_argument(node_.op_type, " needs an output ", i, " but the node has ", outputs_->size(),
                                     " outputs"));
  }
  Status st = check_output_shape(dtype, shape);
  if (!st.ok()) throw SizeError(st.with_context(str_cat("output ", i)));
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
