// Every op in the kernel registry, every attribute its ONNX schema declares, fed
// hostile values (0, -1, 2^62 + 1, INT64_MIN, INT64_MAX, [], NaN, inf, ...), and every
// integer input fed hostile constants, on ordinary float inputs: each model goes
// through import (schema check, guarded shape inference), kernel binding and a run.
// A refusal is fine; a crash, a hang or an allocation beyond the limit would take
// this test down. hostile_model_test.cc checks the refusals' texts per op family.
#include <gtest/gtest.h>
#include <onnx/defs/schema.h>

#include <cmath>
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

// One model: `def`'s op on float [2,3,4,5] inputs (integer inputs as the constant
// `ints` when given), with `attr` set by `set`.
void try_model(const KernelDef& def, const onnx::OpSchema& schema, const std::vector<int64_t>* ints,
               size_t int_input, const std::function<void(onnx::NodeProto*)>& set, Sweep& sweep) {
  testing::ModelSketch m(def.domain.empty() ? std::min(def.until_version, 17) : 17);
  if (!def.domain.empty()) {
    auto* op = m.proto().add_opset_import();
    op->set_domain(def.domain);
    op->set_version(def.since_version);
  }
  std::vector<std::string> inputs;
  std::vector<std::pair<std::string, Tensor>> feeds;
  const size_t n = static_cast<size_t>(std::max(schema.min_input(), 1));
  for (size_t i = 0; i < n && i < 6; ++i) {
    const std::string name = "in" + std::to_string(i);
    inputs.push_back(name);
    if (ints && i == int_input) {
      m.ints(name, *ints);
      continue;
    }
    m.input(name, onnx::TensorProto::FLOAT, {2, 3, 4, 5});
    Tensor t(DataType::kFloat, {2, 3, 4, 5});
    for (int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = static_cast<float>(k % 7) - 3.0f;
    feeds.emplace_back(name, t);
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
  auto s = Session::load_bytes(bytes.data(), bytes.size(), "", options);
  if (!s.ok()) return;
  ++sweep.loaded;
  if ((*s)->run(feeds).ok()) ++sweep.ran;
}

TEST(HostileAttributeSweep, every_registered_op_survives_hostile_attributes_and_constants) {
  Sweep sweep;
  int ops = 0;
  for (const KernelDef& def : KernelRegistry::global().defs()) {
    if (def.domain.rfind("ai.hearth", 0) == 0) continue;  // refused in files
    const int opset = def.domain.empty() ? std::min(def.until_version, 17) : def.since_version;
    const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(def.op_type, opset, def.domain);
    if (!schema) continue;
    ++ops;
    for (const auto& [name, attr] : schema->attributes()) {
      const std::string an = name;
      switch (attr.type) {
        case onnx::AttributeProto::INT:
          for (int64_t v : kHostileInts) try_model(def, *schema, nullptr, 0, [&](auto* n) { testing::set_int(n, an, v); }, sweep);
          break;
        case onnx::AttributeProto::INTS:
          for (const auto& v : kHostileLists)
            try_model(def, *schema, nullptr, 0, [&](auto* n) { testing::set_ints(n, an, v); }, sweep);
          break;
        case onnx::AttributeProto::FLOAT:
          for (float v : kHostileFloats)
            try_model(def, *schema, nullptr, 0, [&](auto* n) { testing::set_float(n, an, v); }, sweep);
          break;
        default:
          break;
      }
    }
    // Integer constants (shapes, axes, repeats, pads, sizes, k, depth) at each input.
    for (size_t i = 0; i < static_cast<size_t>(schema->min_input()) && i < 6; ++i) {
      for (const auto& v : kHostileLists) try_model(def, *schema, &v, i, nullptr, sweep);
    }
  }
  std::cout << "swept " << ops << " ops: " << sweep.models << " models, " << sweep.loaded << " loaded, " << sweep.ran
            << " ran\n";
  EXPECT_GT(ops, 100);
  EXPECT_GT(sweep.models, 1000);
}

}  // namespace
}  // namespace hearth
