// libFuzzer target: a one-node model built from the fuzzer's bytes, then imported,
// bound and run, under ASan + UBSan (fatal). The op comes from the kernel registry;
// its attributes have the types its ONNX schema declares and values biased toward
// the hostile (0, -1, 2^62 + 1, INT64_MIN, NaN, inf); initializers (shapes, axes,
// repeats, pads) and input shapes come from the bytes too. Refusals are expected;
// a crash, a hang (-timeout), a leak or undefined behaviour is a bug.
#include <fuzzer/FuzzedDataProvider.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "kernels/kernel.h"
#include "runtime/session.h"

namespace {

using hearth::DataType;

// Ops a model file may use: the registry minus Hearth's internal domains.
const std::vector<const hearth::KernelDef*>& fuzzable_ops() {
  static const std::vector<const hearth::KernelDef*> ops = [] {
    std::vector<const hearth::KernelDef*> v;
    for (const auto& d : hearth::KernelRegistry::global().defs())
      if (d.domain.rfind("ai.hearth", 0) != 0) v.push_back(&d);
    return v;
  }();
  return ops;
}

int64_t hostile_int(FuzzedDataProvider& f) {
  static const int64_t kValues[] = {0, 1, 2, 3, -1, -2, 4, 7, 16, 255, (int64_t{1} << 31) - 1, int64_t{1} << 31,
                                    int64_t{1} << 32, (int64_t{1} << 62) + 1, std::numeric_limits<int64_t>::max(),
                                    std::numeric_limits<int64_t>::min()};
  const size_t pick = f.ConsumeIntegralInRange<size_t>(0, std::size(kValues));
  return pick < std::size(kValues) ? kValues[pick] : f.ConsumeIntegral<int64_t>();
}

float hostile_float(FuzzedDataProvider& f) {
  static const float kValues[] = {0.0f, 1.0f, -1.0f, 0.5f, 2.0f, std::numeric_limits<float>::quiet_NaN(),
                                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                  1e30f, -1e-30f, 1e-45f};
  const size_t pick = f.ConsumeIntegralInRange<size_t>(0, std::size(kValues));
  return pick < std::size(kValues) ? kValues[pick] : f.ConsumeFloatingPoint<float>();
}

std::string plausible_string(FuzzedDataProvider& f) {
  static const char* kValues[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "constant", "reflect", "edge",
                                  "wrap", "linear", "nearest", "cubic", "DCR", "CRD", "half_pixel", "asymmetric",
                                  "align_corners", "pytorch_half_pixel", "tf_crop_and_resize", "round_prefer_floor",
                                  "floor", "ceil", "none", "sum", "mean", "add", "mul", "max", "min", "avg", "TF",
                                  "IDF", "TFIDF", "i,j->ij", "ij,jk->ik", "...ii->...i", "bij,bjk->bik", "ii->i",
                                  "Relu", "Tanh", "Sigmoid", "forward", "reverse", "bidirectional", ""};
  const size_t pick = f.ConsumeIntegralInRange<size_t>(0, std::size(kValues));
  return pick < std::size(kValues) ? kValues[pick] : f.ConsumeRandomLengthString(16);
}

// An element type the formal parameter allows (and Hearth holds), else float.
DataType pick_type(FuzzedDataProvider& f, const onnx::OpSchema* schema, size_t input) {
  static const std::pair<const char*, DataType> kTypes[] = {
      {"tensor(float)", DataType::kFloat},   {"tensor(int64)", DataType::kInt64}, {"tensor(int32)", DataType::kInt32},
      {"tensor(uint8)", DataType::kUInt8},   {"tensor(int8)", DataType::kInt8},   {"tensor(bool)", DataType::kBool},
      {"tensor(double)", DataType::kDouble}, {"tensor(float16)", DataType::kFloat16},
      {"tensor(int16)", DataType::kInt16},   {"tensor(uint16)", DataType::kUInt16}};
  std::vector<DataType> allowed;
  if (schema && !schema->inputs().empty()) {
    const auto& formal = schema->inputs()[std::min(input, schema->inputs().size() - 1)];
    for (const auto& tc : schema->typeConstraintParams()) {
      if (tc.type_param_str != formal.GetTypeStr()) continue;
      for (const auto& s : tc.allowed_type_strs)
        for (const auto& [name, t] : kTypes)
          if (s == name) allowed.push_back(t);
    }
    for (const auto& [name, t] : kTypes)
      if (formal.GetTypeStr() == name) allowed.push_back(t);
  }
  if (allowed.empty()) return f.ConsumeBool() ? DataType::kFloat : DataType::kInt64;
  return allowed[f.ConsumeIntegralInRange<size_t>(0, allowed.size() - 1)];
}

// A small tensor of `type` with values from the bytes.
hearth::Tensor make_tensor(FuzzedDataProvider& f, DataType type) {
  hearth::Shape shape;
  const int rank = f.ConsumeIntegralInRange(0, 4);
  int64_t n = 1;
  for (int r = 0; r < rank; ++r) {
    shape.push_back(f.ConsumeIntegralInRange<int64_t>(0, 5));
    n *= shape.back();
  }
  hearth::Tensor t(type, shape);
  for (int64_t i = 0; i < n; ++i) {
    switch (type) {
      case DataType::kFloat: t.data<float>()[i] = hostile_float(f); break;
      case DataType::kDouble: t.data<double>()[i] = hostile_float(f); break;
      case DataType::kFloat16: t.data<hearth::Float16>()[i].bits = f.ConsumeIntegral<uint16_t>(); break;
      case DataType::kInt64: t.data<int64_t>()[i] = hostile_int(f); break;
      case DataType::kInt32: t.data<int32_t>()[i] = static_cast<int32_t>(hostile_int(f)); break;
      case DataType::kInt16: t.data<int16_t>()[i] = static_cast<int16_t>(hostile_int(f)); break;
      case DataType::kUInt16: t.data<uint16_t>()[i] = static_cast<uint16_t>(hostile_int(f)); break;
      case DataType::kInt8: t.data<int8_t>()[i] = static_cast<int8_t>(hostile_int(f)); break;
      case DataType::kUInt8: t.data<uint8_t>()[i] = static_cast<uint8_t>(hostile_int(f)); break;
      case DataType::kBool: t.data<bool>()[i] = f.ConsumeBool(); break;
      default: break;
    }
  }
  return t;
}

void to_proto(const hearth::Tensor& t, const std::string& name, onnx::TensorProto* tp) {
  tp->set_name(name);
  tp->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) tp->add_dims(d);
  tp->set_raw_data(t.raw_data(), t.nbytes());
}

void add_attribute(FuzzedDataProvider& f, const onnx::OpSchema::Attribute& a, onnx::NodeProto* node) {
  using AP = onnx::AttributeProto;
  auto* p = node->add_attribute();
  p->set_name(a.name);
  p->set_type(a.type);
  const size_t count = f.ConsumeIntegralInRange<size_t>(0, 6);
  switch (a.type) {
    case AP::INT: p->set_i(hostile_int(f)); break;
    case AP::FLOAT: p->set_f(hostile_float(f)); break;
    case AP::STRING: p->set_s(plausible_string(f)); break;
    case AP::INTS: for (size_t i = 0; i < count; ++i) p->add_ints(hostile_int(f)); break;
    case AP::FLOATS: for (size_t i = 0; i < count; ++i) p->add_floats(hostile_float(f)); break;
    case AP::STRINGS: for (size_t i = 0; i < count; ++i) p->add_strings(plausible_string(f)); break;
    case AP::TENSOR: to_proto(make_tensor(f, f.ConsumeBool() ? DataType::kFloat : DataType::kInt64), "", p->mutable_t()); break;
    default: break;  // graphs are not generated: control flow is fuzzed through fuzz_model_file
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider f(data, size);
  const auto& ops = fuzzable_ops();
  const hearth::KernelDef& def = *ops[f.ConsumeIntegralInRange<size_t>(0, ops.size() - 1)];
  const int lo = std::max(def.since_version, 7), hi = std::min(def.until_version, 17);
  if (def.domain.empty() && lo > hi) return 0;  // registered only for opsets the importer refuses
  const int opset = def.domain.empty() ? f.ConsumeIntegralInRange(lo, hi) : def.since_version;
  const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(def.op_type, opset, def.domain);

  onnx::ModelProto mp;
  mp.set_ir_version(8);
  auto* imp = mp.add_opset_import();
  imp->set_domain("");
  imp->set_version(def.domain.empty() ? opset : 17);
  if (!def.domain.empty()) {
    imp = mp.add_opset_import();
    imp->set_domain(def.domain);
    imp->set_version(opset);
  }
  auto* g = mp.mutable_graph();
  g->set_name("fuzz");
  auto* node = g->add_node();
  node->set_op_type(def.op_type);
  node->set_domain(def.domain);
  node->set_name("fuzzed");

  const int min_in = schema ? schema->min_input() : 1;
  const int max_in = schema ? std::min(schema->max_input(), 6) : 4;
  const int inputs = f.ConsumeIntegralInRange(std::min(min_in, max_in), std::max(min_in, max_in));
  std::vector<std::pair<std::string, hearth::Tensor>> feeds;
  for (int i = 0; i < inputs; ++i) {
    const std::string name = "in" + std::to_string(i);
    if (i >= min_in && f.ConsumeBool()) {  // an omitted optional input
      node->add_input("");
      continue;
    }
    node->add_input(name);
    hearth::Tensor t = make_tensor(f, pick_type(f, schema, static_cast<size_t>(i)));
    if (f.ConsumeBool()) {
      to_proto(t, name, g->add_initializer());
    } else {
      auto* vi = g->add_input();
      vi->set_name(name);
      auto* tt = vi->mutable_type()->mutable_tensor_type();
      tt->set_elem_type(static_cast<int32_t>(t.dtype()));
      auto* shape = tt->mutable_shape();
      for (int64_t d : t.shape()) shape->add_dim()->set_dim_value(d);
      feeds.emplace_back(name, t);
    }
  }
  const int min_out = schema ? std::max(schema->min_output(), 1) : 1;
  const int outputs = f.ConsumeIntegralInRange(min_out, std::max(min_out, schema ? std::min(schema->max_output(), 4) : 1));
  for (int k = 0; k < outputs; ++k) {
    const std::string name = "out" + std::to_string(k);
    node->add_output(name);
    g->add_output()->set_name(name);
  }
  if (schema) {
    for (const auto& [name, a] : schema->attributes())
      if (a.required || f.ConsumeBool()) add_attribute(f, a, node);
  }

  const std::string bytes = mp.SerializeAsString();
  if (const char* dump = std::getenv("HEARTH_FUZZ_DUMP")) {  // to look at a crashing input's model
    std::ofstream(dump, std::ios::binary) << bytes;
  }
  hearth::SessionOptions options;
  options.intra_op_threads = 1;
  options.max_tensor_bytes = 64 << 20;
  options.max_memory_bytes = 256 << 20;
  options.max_loop_iterations = 1000;
  auto session = hearth::Session::load_bytes(bytes.data(), bytes.size(), "", options);
  if (session.ok()) {
    auto out = (*session)->run(feeds);
    (void)out;
  }
  return 0;
}
