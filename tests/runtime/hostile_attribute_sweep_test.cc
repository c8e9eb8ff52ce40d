// Every op in the kernel registry, every attribute its ONNX schema declares, fed
// hostile values (0, -1, 2^62 + 1, INT64_MIN, INT64_MAX, [], NaN, inf, ...), and every
// integer input fed hostile constants, on ordinary float inputs: each model goes
// through import (schema check, guarded shape inference), kernel binding and a run.
// A refusal is fine; a crash, a hang or an allocation beyond the limit would take
// this test down. hostile_model_test.cc checks the refusals' texts per op family.
#include <gtest/gtest.h>
#include <onnx/defs/data_type_utils.h>
#include <onnx/defs/schema.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>

#include "graph/model_builder.h"
#include "kernels/kernel.h"
#include "runtime/session.h"

namespace hearth {
namespace {

constexpr int64_t kHostileInts[] = {0, -1, (int64_t{1} << 62) + 1, std::numeric_limits<int64_t>::min(),
                                    std::numeric_limits<int64_t>::max(), int64_t{1} << 31};
const std::vector<std::vector<int64_t>> kHostileLists = {
    {}, {0, 0}, {-1, -1}, {(int64_t{1} << 62) + 1, 4}, {std::numeric_limits<int64_t>::min(), 1, 1, 1},
    {0, 0, 0, 0, 0, 0, 0, 0}};
const float kHostileFloats[] = {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::infinity(), 1e30f};

struct Sweep {
  int models = 0, loaded = 0, ran = 0;
};

// What one model changes at input `input`: an integer constant, or a declared shape
// (`no_shape`: the input declares its type only).
struct InputVariant {
  size_t input = 0;
  const std::vector<int64_t>* ints = nullptr;
  const std::vector<int64_t>* dims = nullptr;
  bool no_shape = false;
};

// The element type input `i` is declared with: float where the schema allows it,
// else the first type it allows (so that libonnx's type check passes and inference
// runs on the shapes).
int input_elem_type(const onnx::OpSchema& schema, size_t i) {
  if (schema.inputs().empty()) return onnx::TensorProto::FLOAT;
  const auto& param = schema.inputs()[std::min(i, schema.inputs().size() - 1)];
  int chosen = 0;
  for (const auto* type : param.GetTypes()) {
    if (*type == "tensor(float)") return onnx::TensorProto::FLOAT;
    const onnx::TypeProto t = onnx::Utils::DataTypeUtils::ToTypeProto(type);
    if (t.has_tensor_type() && (chosen == 0 || t.tensor_type().elem_type() < chosen))
      chosen = t.tensor_type().elem_type();
  }
  return chosen == 0 ? onnx::TensorProto::FLOAT : chosen;
}

// Values in -3..3 for float, zeros for other element types.
Tensor sample_input(int elem_type, const std::vector<int64_t>& dims) {
  Tensor t(static_cast<DataType>(elem_type), dims);
  std::memset(t.raw_data(), 0, static_cast<size_t>(t.nbytes()));
  if (t.dtype() == DataType::kFloat)
    for (int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = static_cast<float>(k % 7) - 3.0f;
  return t;
}

// One model: `def`'s op on [2,3,4,5] inputs but for `variant`, with attributes
// set by `set`.
void try_model(const KernelDef& def, int opset, const onnx::OpSchema& schema, const InputVariant& variant,
               const std::function<void(onnx::NodeProto*)>& set, Sweep& sweep) {
  testing::ModelSketch m(def.domain.empty() ? opset : 17);
  if (!def.domain.empty()) {
    auto* op = m.proto().add_opset_import();
    op->set_domain(def.domain);
    op->set_version(opset);
  }
  std::vector<std::string> inputs;
  std::vector<std::pair<std::string, Tensor>> feeds;
  const size_t n = std::max(static_cast<size_t>(std::max(schema.min_input(), 1)), variant.input + 1);
  for (size_t i = 0; i < n && i < 6; ++i) {
    const std::string name = "in" + std::to_string(i);
    inputs.push_back(name);
    const bool varied = i == variant.input;
    if (varied && variant.ints) {
      m.ints(name, *variant.ints);
      continue;
    }
    const std::vector<int64_t> dims = varied && variant.dims ? *variant.dims : std::vector<int64_t>{2, 3, 4, 5};
    const int elem_type = input_elem_type(schema, i);
    if (varied && variant.no_shape) {
      auto* vi = m.graph()->add_input();
      vi->set_name(name);
      vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
    } else {
      m.input(name, elem_type, dims);
    }
    if (dtype_size(static_cast<DataType>(elem_type)) > 0) feeds.emplace_back(name, sample_input(elem_type, dims));
  }
  auto* node = m.node(def.op_type, inputs, {"y"});
  node->set_domain(def.domain);
  if (set) set(node);
  m.output("y");
  SessionOptions options;
  options.intra_op_threads = 1;
  options.max_tensor_bytes = 64 << 20;
  options.max_loop_iterations = 1000;
  const std::string bytes = m.bytes();
  ++sweep.models;
  if (std::getenv("HEARTH_SWEEP_TRACE"))  // which model a crash came from
    std::cerr << def.domain << "." << def.op_type << " opset " << opset << " input " << variant.input << "\n";
  auto s = Session::load_bytes(bytes.data(), bytes.size(), "", options);
  if (!s.ok()) return;
  ++sweep.loaded;
  if ((*s)->run(feeds).ok()) ++sweep.ran;
}

// Each schema version of `def`'s op in the opsets it is registered for (up to 17),
// with the opset that selects it: old versions have inference functions of their own.
std::vector<std::pair<int, const onnx::OpSchema*>> schemas_of(const KernelDef& def) {
  std::vector<std::pair<int, const onnx::OpSchema*>> out;
  if (def.domain.rfind("ai.hearth", 0) == 0) return out;  // refused in files
  const int last = def.domain.empty() ? std::min(def.until_version, 17) : def.since_version;
  for (int opset = std::max(def.since_version, 1); opset <= last; ++opset) {
    const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(def.op_type, opset, def.domain);
    if (schema && (out.empty() || out.back().second != schema)) out.emplace_back(opset, schema);
  }
  return out;
}

TEST(HostileAttributeSweep, every_registered_op_survives_hostile_attributes_and_constants) {
  Sweep sweep;
  int ops = 0;
  for (const KernelDef& def : KernelRegistry::global().defs()) {
   for (const auto& [opset, schema] : schemas_of(def)) {
    ++ops;
    for (const auto& [name, attr] : schema->attributes()) {
      const std::string an = name;
      switch (attr.type) {
        case onnx::AttributeProto::INT:
          for (int64_t v : kHostileInts) try_model(def, opset, *schema, {}, [&](auto* n) { testing::set_int(n, an, v); }, sweep);
          break;
        case onnx::AttributeProto::INTS:
          for (const auto& v : kHostileLists)
            try_model(def, opset, *schema, {}, [&](auto* n) { testing::set_ints(n, an, v); }, sweep);
          break;
        case onnx::AttributeProto::FLOAT:
          for (float v : kHostileFloats)
            try_model(def, opset, *schema, {}, [&](auto* n) { testing::set_float(n, an, v); }, sweep);
          break;
        default:
          break;
      }
    }
    // Integer constants (shapes, axes, repeats, pads, sizes, k, depth) at each input.
    for (size_t i = 0; i < static_cast<size_t>(schema->min_input()) && i < 6; ++i) {
      for (const auto& v : kHostileLists) try_model(def, opset, *schema, {i, &v}, nullptr, sweep);
    }
   }
  }
  std::cout << "swept " << ops << " op versions: " << sweep.models << " models, " << sweep.loaded << " loaded, " << sweep.ran
            << " ran\n";
  EXPECT_GT(ops, 100);
  EXPECT_GT(sweep.models, 1000);
}

// Every required attribute at a plausible value (1, [1, 1], 1.0), so that inference
// gets past its attribute checks to the inputs' shapes.
void set_required_attributes(const onnx::OpSchema& schema, onnx::NodeProto* n) {
  for (const auto& [name, attr] : schema.attributes()) {
    if (!attr.required) continue;
    if (attr.type == onnx::AttributeProto::INT) testing::set_int(n, name, 1);
    if (attr.type == onnx::AttributeProto::INTS) testing::set_ints(n, name, {1, 1});
    if (attr.type == onnx::AttributeProto::FLOAT) testing::set_float(n, name, 1.0f);
  }
}

// Each input in turn (optional ones too) declared with no shape, or as a scalar, a
// vector or a matrix, the others [2,3,4,5]: libonnx's inference functions read
// dims of inputs they did not check the rank of, in every schema version
// (MaxUnpool's indices, found by fuzz_model_run; LSTM-1's X, by fuzz_model_file).
TEST(HostileAttributeSweep, every_registered_op_survives_inputs_of_every_small_rank) {
  const std::vector<std::vector<int64_t>> kRanks = {{}, {3}, {2, 3}};
  Sweep sweep;
  for (const KernelDef& def : KernelRegistry::global().defs()) {
   for (const auto& [opset, schema] : schemas_of(def)) {
    auto fill = [s = schema](onnx::NodeProto* n) { set_required_attributes(*s, n); };
    for (size_t i = 0; i < static_cast<size_t>(std::max(schema->max_input(), 1)) && i < 6; ++i) {
      InputVariant unshaped{i};
      unshaped.no_shape = true;
      try_model(def, opset, *schema, unshaped, fill, sweep);
      for (const auto& dims : kRanks) try_model(def, opset, *schema, {i, nullptr, &dims}, fill, sweep);
    }
   }
  }
  std::cout << "swept " << sweep.models << " models, " << sweep.loaded << " loaded, " << sweep.ran << " ran\n";
  EXPECT_GT(sweep.models, 500);
  EXPECT_GT(sweep.ran, 0);
}

}  // namespace
}  // namespace hearth
