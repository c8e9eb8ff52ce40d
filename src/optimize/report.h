// Before/after report of a model transformation (quantization now; pruning and
// distillation later): size, parameters, latency on this CPU at 1 and N
// threads, and agreement of the outputs on an evaluation set, as REPORT.json
// and a readable REPORT.md.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "optimize/quantize.h"

namespace hearth::optimize {

struct ModelStats {
  size_t bytes = 0;
  int64_t parameters = 0;         // initializer elements
  int64_t int8_parameters = 0;    // of which int8 / uint8
  double latency_ms_1 = 0;        // median, 1 thread
  double latency_ms_n = 0;        // median, `threads_n` threads
};

struct OutputAgreement {
  std::string name;
  double cosine_mean = 0, cosine_min = 1;  // per batch, flattened
  double rel_l2_max = 0;                   // ||after - before|| / ||before||, worst batch
  double top1_agreement = -1;              // share of rows whose argmax agrees (rank-2 outputs), else -1
  int64_t rows = 0;
};

struct Report {
  std::string command;  // e.g. "quantize static (minmax)"
  std::string cpu;
  int threads_n = 1;
  ModelStats before, after;
  std::vector<OutputAgreement> outputs;
  int eval_batches = 0;
  QuantizeResult quantize;  // what the quantizer did (model_bytes cleared)
};

// Measures both models (bytes as written) on `eval` batches; latency on the first batch.
Result<Report> measure_report(const std::string& before_bytes, const std::string& after_bytes,
                              const std::vector<Feed>& eval, int threads_n);

std::string report_json(const Report& r);
std::string report_markdown(const Report& r);

}  // namespace hearth::optimize
