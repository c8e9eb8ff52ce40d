// INT8 quantization of an ONNX model into the standard QDQ form
// (QuantizeLinear / DequantizeLinear only, so any runtime loads the result).
//
//   weights: constant weights of Conv, MatMul and Gemm become int8 with a
//            DequantizeLinear in front (symmetric; per output channel from
//            opset 13, per tensor before): the file shrinks to about a quarter,
//            activations stay float32.
//   static:  as weights, and each quantized node's activation input goes through
//            a QuantizeLinear -> DequantizeLinear pair (uint8, asymmetric) whose
//            scale comes from calibration: the FP32 model runs on the calibration
//            set, and each such tensor's range is collected as it streams by
//            (min/max, or a histogram of bounded size for percentiles), so
//            memory does not grow with the set.
// Nodes of other types, nodes whose weight is computed, and nodes named in
// keep_fp32 stay in FP32, each with the reason in the result.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hearth::optimize {

enum class QuantMode { kWeights, kStatic };
enum class CalibrationMethod { kMinMax, kPercentile };

struct QuantizeOptions {
  QuantMode mode = QuantMode::kStatic;
  CalibrationMethod method = CalibrationMethod::kMinMax;
  double percentile = 99.99;  // kept share of values, for kPercentile
  bool per_channel = true;    // per output channel weights (needs opset >= 13)
  // 8: int8 weights in [-127, 127]. 7: [-63, 63], for CPUs without VNNI, whose
  // AVX2 int8 kernels add pairs of u8 x s8 products in 16 bits (vpmaddubsw) and
  // saturate beyond that; with 7-bit weights they stay exact. 0: decide from
  // `target` (or this CPU when it is empty).
  int weight_bits = 0;
  std::string target;  // "vnni" or "avx2": the CPU the model is for; "" this one
  std::vector<std::string> keep_fp32;  // node names left in FP32
  int threads = 0;            // calibration runs
};

// One batch of calibration inputs: input name -> tensor.
using Feed = std::vector<std::pair<std::string, Tensor>>;

struct NodeDecision {
  std::string node;     // name (or op type and index when unnamed)
  std::string op_type;
  bool quantized = false;
  std::string why;      // how it was quantized, or why it stayed FP32
};

struct QuantizeResult {
  std::string model_bytes;  // the quantized ModelProto
  int weight_bits = 8;      // what was used, and why
  std::string weight_bits_why;
  std::vector<NodeDecision> nodes;
  std::map<std::string, std::pair<float, float>> ranges;  // activation -> calibrated [lo, hi]
  int64_t weights_quantized = 0;  // elements
  int calibration_batches = 0;
};

Result<QuantMode> parse_quant_mode(const std::string& text);                // weights | static
Result<CalibrationMethod> parse_calibration_method(const std::string& text);  // minmax | percentile

// Reads calibration batches from `dir`: for a model with one input every *.npy
// file is a batch of it; otherwise files are named INPUT.KEY.npy and the files
// sharing a KEY make one batch. Each file is checked against the input's
// declared type and fixed dims before any work starts.
Result<std::vector<Feed>> read_calibration_dir(const std::string& dir, const std::string& model_bytes);

// Quantizes the ONNX model held in `model_bytes` (no external data).
// `calibration` is required for QuantMode::kStatic.
Result<QuantizeResult> quantize_model(const std::string& model_bytes, const QuantizeOptions& options,
                                      const std::vector<Feed>& calibration);

}  // namespace hearth::optimize
