// Schema checks and guarded per-node inference for import (see shape_inference.h).
#include "graph/shape_inference.h"

#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <unordered_map>

#include "graph/tensor_proto.h"

namespace hearth {
namespace {

// Elements times values: bounds on what libonnx's inference may multiply together.
constexpr int64_t kMaxInferredExtent = int64_t{1} << 40;
constexpr int kMaxConstantElements = 64;

bool is_hearth_domain(const std::string& domain) { return domain.rfind("ai.hearth", 0) == 0; }

const onnx::OpSchema* find_schema(const onnx::NodeProto& np, const std::map<std::string, int64_t>& opsets) {
  const std::string& domain = normalize_domain(np.domain());
  auto it = opsets.find(domain);
  if (it == opsets.end() || it->second <= 0 || it->second > 1000) return nullptr;
  const onnx::OpSchema* s =
      onnx::OpSchemaRegistry::Schema(np.op_type(), static_cast<int>(it->second), domain.empty() ? "" : domain);
  return s && !s->Deprecated() ? s : nullptr;
}

// Ops whose inference is not called: control flow (their subgraphs would be inferred
// by libonnx without these guards) and ops of values Hearth does not hold.
bool never_inferred(const std::string& op) {
  static const std::set<std::string> kOps = {"If", "Loop", "Scan", "SplitToSequence", "ConcatFromSequence",
                                             "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
                                             "SequenceInsert", "SequenceLength", "SequenceMap", "Optional",
                                             "OptionalGetElement", "OptionalHasElement", "ZipMap"};
  return kOps.count(op) > 0;
}

const onnx::AttributeProto* attr(const onnx::NodeProto& np, const char* name) {
  for (const auto& a : np.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

// Every value of int/ints attribute `name` (if present) lies in [lo, hi].
bool ints_within(const onnx::NodeProto& np, const char* name, int64_t lo, int64_t hi) {
  const onnx::AttributeProto* a = attr(np, name);
  if (!a) return true;
  if (a->has_i() && (a->i() < lo || a->i() > hi)) return false;
  return std::all_of(a->ints().begin(), a->ints().end(), [&](int64_t v) { return v >= lo && v <= hi; });
}

// Attribute `name`, if present, has `n` values (n < 0: any count).
bool ints_count(const onnx::NodeProto& np, const char* name, int64_t n) {
  const onnx::AttributeProto* a = attr(np, name);
  return !a || n < 0 || a->ints_size() == n;
}

struct Inputs {
  std::vector<const onnx::TypeProto*> types;  // nullptr: omitted
  std::vector<const onnx::TensorProto*> data;
  // Rank of input i, or -1 when it is omitted or its shape is unknown.
  int rank(size_t i) const {
    if (i >= types.size() || !types[i] || !types[i]->tensor_type().has_shape()) return -1;
    return types[i]->tensor_type().shape().dim_size();
  }
};

// Windowed ops: X at 0, weights (when the op has them) at `w`; geometry attributes.
bool window_guard(const onnx::NodeProto& np, const Inputs& in, int w) {
  const int r = in.rank(0);
  if (r >= 0 && r < 3) return false;
  const int wr = w >= 0 ? in.rank(static_cast<size_t>(w)) : -1;
  if (w >= 0 && wr >= 0 && (wr < 3 || (r >= 0 && wr != r))) return false;
  const int64_t spatial = r >= 0 ? r - 2 : (wr >= 0 ? wr - 2 : -1);
  for (const char* name : {"kernel_shape", "strides", "dilations"}) {
    if (!ints_within(np, name, 1, kMaxInferredDim) || !ints_count(np, name, spatial)) return false;
  }
  for (const char* name : {"output_padding", "output_shape"}) {
    if (!ints_within(np, name, 0, kMaxInferredDim) || !ints_count(np, name, spatial)) return false;
  }
  return ints_within(np, "pads", 0, kMaxInferredDim) && ints_count(np, "pads", spatial < 0 ? -1 : 2 * spatial) &&
         ints_within(np, "group", 1, kMaxInferredDim);
}

// What libonnx 1.12's inference function for this op assumes beyond the schema
// (found by feeding every op hostile attributes and ranks; see the hostile-model
// tests). False: do not call it.
bool inference_is_safe(const onnx::NodeProto& np, const Inputs& in) {
  const std::string& op = np.op_type();
  if (np.domain().empty() || np.domain() == "ai.onnx") {
    if (op == "Conv" || op == "ConvInteger" || op == "ConvTranspose") return window_guard(np, in, 1);
    if (op == "QLinearConv") return window_guard(np, in, 3);
    if (op == "AveragePool" || op == "MaxPool" || op == "LpPool") return window_guard(np, in, -1);
    // MaxUnpool copies dim 1 of the indices without looking at their rank.
    if (op == "MaxUnpool") return window_guard(np, in, -1) && (in.types.size() > 2 || in.rank(1) >= 2);
    if (op == "MaxRoiPool" || op == "RoiAlign") return in.rank(0) < 0 || in.rank(0) == 4;
    if (op.rfind("Global", 0) == 0) return in.rank(0) < 0 || in.rank(0) >= 2;
    if (op == "DepthToSpace" || op == "SpaceToDepth") {
      return ints_within(np, "blocksize", 1, 1 << 16) && (in.rank(0) < 0 || in.rank(0) == 4);
    }
    if (op == "LayerNormalization") {
      const int r = in.rank(0);
      return r != 0 && (r < 0 || ints_within(np, "axis", -r, r - 1));
    }
    if (op == "STFT") return in.rank(0) < 0 || in.rank(0) == 3;
    // Old schema versions index dims without checking the rank first.
    if (op == "Gemm") return (in.rank(0) < 0 || in.rank(0) == 2) && (in.rank(1) < 0 || in.rank(1) == 2);
    if (op == "RNN" || op == "GRU" || op == "LSTM") return in.rank(0) < 0 || in.rank(0) == 3;
    if (op == "Range" && in.data.size() > 2 && in.data[2]) {  // a zero delta: libonnx divides by it
      return in.data[2]->raw_data().find_first_not_of('\0') != std::string::npos;
    }
  }
  // An 'axis' far outside the rank of the first input is refused by the kernels anyway;
  // libonnx reads dims at batch_dims (GatherND) without a check.
  const int r = in.rank(0);
  if (!ints_within(np, "batch_dims", 0, r < 0 ? kMaxInferredDim : std::max(r - 1, 0))) return false;
  return r < 0 || ints_within(np, "axis", -r - 1, r + 1);
}

// The libonnx side of one node's inference: its attributes, the input types and
// constant data gathered by infer_value_info, room for the output types.
class NodeContext final : public onnx::InferenceContext {
 public:
  NodeContext(const onnx::NodeProto& np, const Inputs& in) : np_(np), in_(in), outputs_(np.output_size()) {}

  const onnx::AttributeProto* getAttribute(const std::string& name) const override { return attr(np_, name.c_str()); }
  size_t getNumInputs() const override { return in_.types.size(); }
  const onnx::TypeProto* getInputType(size_t i) const override { return i < in_.types.size() ? in_.types[i] : nullptr; }
  const onnx::TensorProto* getInputData(size_t i) const override { return i < in_.data.size() ? in_.data[i] : nullptr; }
  size_t getNumOutputs() const override { return outputs_.size(); }
  onnx::TypeProto* getOutputType(size_t i) override { return i < outputs_.size() ? &outputs_[i] : nullptr; }
  onnx::GraphInferencer* getGraphAttributeInferencer(const std::string&) override { return nullptr; }
  const onnx::SparseTensorProto* getInputSparseData(size_t) const override { return nullptr; }
  const onnx::TensorShapeProto* getSymbolicInput(size_t) const override { return nullptr; }

  const onnx::TypeProto& output(size_t i) const { return outputs_[i]; }

 private:
  const onnx::NodeProto& np_;
  const Inputs& in_;
  std::vector<onnx::TypeProto> outputs_;
};

// A tensor type for libonnx from Hearth's value info; dims too large for its
// arithmetic become unknown (the rank stays).
onnx::TypeProto to_type_proto(const ValueInfo& v) {
  onnx::TypeProto t;
  auto* tt = t.mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(v.dtype));
  if (!v.has_shape) return t;
  int64_t extent = 1;
  bool small = true;
  for (int64_t d : v.dims) {
    if (d > kMaxInferredDim || (d > 0 && __builtin_mul_overflow(extent, d, &extent)) || extent > kMaxInferredExtent)
      small = false;
  }
  auto* shape = tt->mutable_shape();
  for (size_t i = 0; i < v.dims.size(); ++i) {
    auto* dim = shape->add_dim();
    if (small && v.dims[i] >= 0) dim->set_dim_value(v.dims[i]);
    else if (i < v.dim_names.size() && !v.dim_names[i].empty()) dim->set_dim_param(v.dim_names[i]);
  }
  return t;
}

ValueInfo value_info_of(const std::string& name, const Tensor& t) {
  ValueInfo v;
  v.name = name;
  v.dtype = t.dtype();
  v.has_shape = true;
  v.dims = t.shape();
  v.dim_names.assign(v.dims.size(), "");
  return v;
}

// Small integer constants whose values libonnx may read (shapes, axes, repeats, pads),
// handed over in raw_data form (tensor_to_proto).
bool small_int_constant(const Tensor& t) {
  if (t.dtype() != DataType::kInt64 && t.dtype() != DataType::kInt32) return false;
  if (t.numel() > kMaxConstantElements) return false;
  auto values = tensor_to_int64s(t);
  if (!values.ok()) return false;
  int64_t extent = 1;
  for (int64_t v : *values) {
    if (v < -kMaxInferredDim || v > kMaxInferredDim) return false;
    if (v != 0 && (__builtin_mul_overflow(extent, std::llabs(v), &extent) || extent > kMaxInferredExtent)) return false;
  }
  return true;
}

// An inferred output as Hearth's value info, unless it is not a tensor or has a negative dim.
bool from_type_proto(const std::string& name, const onnx::TypeProto& t, ValueInfo* v) {
  if (!t.has_tensor_type() || t.tensor_type().elem_type() == 0) return false;
  const auto& tt = t.tensor_type();
  v->name = name;
  v->dtype = static_cast<DataType>(tt.elem_type());
  v->has_shape = tt.has_shape();
  for (const auto& d : tt.shape().dim()) {
    if (d.has_dim_value() && d.dim_value() < 0) return false;
    v->dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    v->dim_names.push_back(d.has_dim_param() ? d.dim_param() : "");
  }
  return true;
}

}  // namespace

Status check_node_schema(const onnx::NodeProto& np, const std::map<std::string, int64_t>& opsets) {
  const std::string name = np.name().empty() ? np.op_type() : np.name();
  if (is_hearth_domain(np.domain())) {
    return invalid_argument("node '", name, "' (", np.op_type(), ") uses domain ", np.domain(),
                            ", which is reserved for Hearth's own graph rewrites");
  }
  const onnx::OpSchema* schema = find_schema(np, opsets);
  if (!schema) return ok_status();
  try {
    schema->Verify(np);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto cut = msg.find("\n"); cut != std::string::npos) msg.resize(cut);
    return invalid_argument("node '", name, "' (", np.op_type(), ") does not match its ONNX schema: ", msg);
  }
  return ok_status();
}

void infer_value_info(const onnx::GraphProto& gp, const std::map<std::string, int64_t>& opsets, Graph& g) {
  std::unordered_map<std::string, onnx::TypeProto> types;
  std::unordered_map<std::string, onnx::TensorProto> data;
  for (const auto& [name, t] : g.initializers) {
    types[name] = to_type_proto(value_info_of(name, t));
    if (small_int_constant(t)) tensor_to_proto(t, name, &data[name]);
  }
  for (const auto& v : g.overridable_initializers) {  // the caller may feed other values
    data.erase(v.name);
    if (v.dtype != DataType::kUndefined) types[v.name] = to_type_proto(v);
  }
  for (const auto& v : g.inputs)
    if (v.dtype != DataType::kUndefined) types[v.name] = to_type_proto(v);
  for (const auto& [name, v] : g.value_info)
    if (v.dtype != DataType::kUndefined) types[name] = to_type_proto(v);

  for (const auto& np : gp.node()) {
    if (never_inferred(np.op_type()) || np.op_type() == "Constant") continue;  // Constants are initializers now
    const onnx::OpSchema* schema = find_schema(np, opsets);
    if (!schema || !schema->has_type_and_shape_inference_function()) continue;
    Inputs in;
    bool known = true;
    for (const auto& name : np.input()) {
      if (name.empty()) {
        in.types.push_back(nullptr);
        in.data.push_back(nullptr);
        continue;
      }
      auto t = types.find(name);
      if (t == types.end()) known = false;
      in.types.push_back(t == types.end() ? nullptr : &t->second);
      auto d = data.find(name);
      in.data.push_back(d == data.end() ? nullptr : &d->second);
    }
    if (!known || !inference_is_safe(np, in)) continue;
    NodeContext ctx(np, in);
    try {
      schema->CheckInputOutputType(ctx);
      schema->GetTypeAndShapeInferenceFunction()(ctx);
    } catch (const std::exception&) {
      continue;
    }
    for (int k = 0; k < np.output_size(); ++k) {
      const std::string& name = np.output(k);
      ValueInfo v;
      if (name.empty() || types.count(name) || !from_type_proto(name, ctx.output(k), &v)) continue;
      types[name] = to_type_proto(v);
      g.value_info.emplace(name, std::move(v));
    }
  }
}

}  // namespace hearth
