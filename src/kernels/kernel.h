// The kernel interface and registry. One op family per file; each file has a
// register_<family>_kernels(KernelRegistry&) function that adds one line per
// op: name, domain, opset range, dtypes, factory (see register_all.cc).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "graph/graph.h"

namespace hearth {

constexpr int kMaxOpset = 1 << 20;

class PathTuner;

// What a kernel sees when it is created (once per node, at session load).
struct KernelInfo {
  const Node& node;
  int64_t opset = 0;  // opset version of the node's domain in this model
  // Returns the constant (initializer) tensor feeding input i, or nullptr when
  // that input is computed at run time or absent. Lets kernels pre-pack weights.
  std::function<const Tensor*(size_t)> constant_input;
  // The session's choice among candidate paths (kernels/path_tuner.h); null
  // when the kernel is built outside a session: it then uses its heuristics.
  PathTuner* tuner = nullptr;
};

// What a kernel sees when it runs. Inputs are borrowed; outputs are set by the kernel.
class KernelContext {
 public:
  // `donatable` bit k: the session releases input k after this node and nothing
  // else reads it (see allocate_output_over_input).
  // `max_tensor_bytes`: the most bytes one output may take (0: no limit).
  KernelContext(const Node& node, std::vector<const Tensor*> inputs, std::vector<Tensor>* outputs,
                Allocator* allocator, int num_threads, uint64_t donatable = 0, size_t max_tensor_bytes = 0)
      : node_(node),
        inputs_(std::move(inputs)),
        outputs_(outputs),
        allocator_(allocator),
        num_threads_(num_threads),
        donatable_(donatable),
        max_tensor_bytes_(max_tensor_bytes) {}

  const Node& node() const { return node_; }
  size_t num_inputs() const { return inputs_.size(); }
  // nullptr when the input is omitted ("" name) or beyond the node's inputs.
  const Tensor* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }
  size_t num_outputs() const { return outputs_->size(); }
  // Allocates output i (uninitialized) from the session's allocator and returns it.
  // A shape that comes from the model may be hostile: a negative dim, an element count
  // or byte size over 64 bits, or more than the tensor limit (counting an empty
  // tensor's zero dims as ones, see checked_extent_bytes) throws SizeError naming the
  // output and the shape, which the session turns into the node's error status. So
  // does an output index the node does not have.
  Tensor& allocate_output(size_t i, DataType dtype, Shape shape) {
    check_output_size(i, dtype, shape);
    (*outputs_)[i] = Tensor(dtype, std::move(shape), allocator_);
    return (*outputs_)[i];
  }
  // Output i in the memory of input `in` when the session allows it (this node is
  // the input's last reader and no other tensor shares that memory) and dtype and
  // element count match; freshly allocated otherwise. Saves a buffer and, for
  // a fused residual, a copy. The kernel must read every element of the input
  // no later than it writes the same element of the output.
  Tensor& allocate_output_over_input(size_t i, size_t in, DataType dtype, Shape shape) {
    check_output_size(i, dtype, shape);
    if (can_donate(in, dtype, shape)) {
      (*outputs_)[i] = input(in)->alias(dtype, std::move(shape));
      return (*outputs_)[i];
    }
    return allocate_output(i, dtype, std::move(shape));
  }
  // Whether allocate_output_over_input(_, in, dtype, shape) would reuse input `in`.
  bool can_donate(size_t in, DataType dtype, const Shape& shape) const {
    const Tensor* x = input(in);
    return in < 64 && (donatable_ >> in & 1) && x && x->dtype() == dtype && x->sole_owner() &&
           x->numel() == shape_numel(shape);
  }
  // Sets output i to an existing tensor (for views such as Reshape or Identity); the
  // same checks as allocate_output, since a view may give an empty tensor huge dims.
  void set_output(size_t i, Tensor t) {
    check_output_size(i, t.dtype(), t.shape());
    (*outputs_)[i] = std::move(t);
  }
  Allocator* allocator() const { return allocator_; }
  // Intra-op threads this run may use (OpenMP).
  int num_threads() const { return num_threads_; }
  size_t max_tensor_bytes() const { return max_tensor_bytes_; }
  // The checks allocate_output makes, as a Status: for kernels that size scratch
  // memory from an output shape before they allocate the output.
  Status check_output_shape(DataType dtype, const Shape& shape) const;

 private:
  void check_output_size(size_t i, DataType dtype, const Shape& shape) const;

  const Node& node_;
  std::vector<const Tensor*> inputs_;
  std::vector<Tensor>* outputs_;
  Allocator* allocator_;
  int num_threads_;
  uint64_t donatable_;
  size_t max_tensor_bytes_;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // Reads attributes, validates them, may pre-pack constant inputs.
  virtual Status init(const KernelInfo& info) {
    (void)info;
    return ok_status();
  }
  // Computes outputs from inputs. Must be callable repeatedly, but never
  // concurrently on the same Kernel object.
  virtual Status compute(KernelContext& ctx) = 0;
};

// Prefixes `s` with the node's description unless the message already names it.
inline Status with_node_context(const Status& s, const Node& node) {
  const std::string d = node.describe();
  if (s.ok() || s.message().find(d) != std::string::npos) return s;
  return s.with_context(d);
}

using KernelFactory = std::function<Result<std::unique_ptr<Kernel>>(const KernelInfo&)>;

// Factory for a Kernel subclass with a default constructor.
template <typename K>
KernelFactory kernel_factory() {
  return [](const KernelInfo& info) -> Result<std::unique_ptr<Kernel>> {
    auto k = std::make_unique<K>();
    Status s = k->init(info);
    if (!s.ok()) return with_node_context(s, info.node);
    return std::unique_ptr<Kernel>(std::move(k));
  };
}

struct KernelDef {
  std::string op_type;
  std::string domain;  // "" for the default domain
  int since_version = 1;
  int until_version = kMaxOpset;  // inclusive
  std::vector<DataType> dtypes;   // documentation of the element types handled
  KernelFactory factory;
};

class KernelRegistry {
 public:
  void add(KernelDef def) { defs_.push_back(std::move(def)); }
  // The kernel for op/domain whose opset range contains `opset`, or nullptr.
  const KernelDef* find(const std::string& op_type, const std::string& domain, int64_t opset) const;
  // True when the op exists under any opset (for better error messages).
  bool knows_op(const std::string& op_type, const std::string& domain) const;
  const std::vector<KernelDef>& defs() const { return defs_; }

  // The process-wide registry with every built-in kernel.
  static const KernelRegistry& global();

 private:
  std::vector<KernelDef> defs_;
};

// Convenience for registration lines.
inline std::vector<DataType> float_types() { return {DataType::kFloat, DataType::kDouble, DataType::kFloat16}; }
inline std::vector<DataType> numeric_types() {
  return {DataType::kFloat, DataType::kDouble, DataType::kFloat16, DataType::kInt8, DataType::kUInt8,
          DataType::kInt16, DataType::kUInt16, DataType::kInt32, DataType::kUInt32, DataType::kInt64,
          DataType::kUInt64};
}
inline std::vector<DataType> all_types() {
  auto t = numeric_types();
  t.push_back(DataType::kBool);
  t.push_back(DataType::kBFloat16);
  return t;
}

// Normalizes a possibly negative axis into [0, rank); error names the node.
Result<int64_t> normalize_axis(int64_t axis, int64_t rank, const Node& node);

}  // namespace hearth
