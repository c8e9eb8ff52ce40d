// libFuzzer target: ONNX model import (protobuf parse, initializers, external
// data checks, attributes, topological sort). Any crash is a bug.
#include <cstddef>
#include <cstdint>

#include "graph/onnx_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // base_dir "" forbids external data, as for a model received over the network.
  auto model = hearth::load_model_bytes(data, size, "");
  (void)model;
  auto tensor = hearth::parse_tensor_proto(data, size);
  (void)tensor;
  return 0;
}
