// libFuzzer target: a whole model file (seeded with the ONNX conformance suite's
// models, mutated byte-wise by libFuzzer), imported, optimized, bound and run on
// inputs made from its declared input types (dynamic dims 1, values from the tail
// of the bytes), under ASan + UBSan (fatal). Multi-node graphs, the optimizer's
// rewrites and control flow get exercised here. Refusals are expected; a crash, a
// hang (-timeout), a leak or undefined behaviour is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "runtime/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hearth::SessionOptions options;
  options.intra_op_threads = 1;
  options.max_tensor_bytes = 64 << 20;
  options.max_memory_bytes = 256 << 20;
  options.max_loop_iterations = 1000;
  auto session = hearth::Session::load_bytes(data, size, "", options);
  if (!session.ok()) return 0;
  std::vector<std::pair<std::string, hearth::Tensor>> feeds;
  size_t cursor = size / 2;  // input values come from the second half of the bytes
  for (const auto& in : (*session)->inputs()) {
    if (!hearth::dtype_is_supported(in.dtype)) return 0;
    hearth::Shape shape;
    int64_t n = 1;
    for (int64_t d : in.dims) {
      shape.push_back(d < 0 ? 1 : d);
      n *= shape.back();
      if (n > 4096) return 0;  // a declared input this large is not what this target explores
    }
    hearth::Tensor t = hearth::Tensor::zeros(in.dtype, shape);
    auto* bytes = static_cast<uint8_t*>(t.raw_data());
    for (size_t i = 0; i < t.nbytes() && cursor < size; ++i) bytes[i] = data[cursor++];
    if (in.dtype == hearth::DataType::kBool)  // a bool holds 0 or 1
      for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] &= 1;
    feeds.emplace_back(in.name, t);
  }
  auto out = (*session)->run(feeds);
  (void)out;
  return 0;
}
