// `hearth optimize quantize`: INT8 QDQ models (optimize/quantize.h) with a
// before/after report (optimize/report.h).
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/file_util.h"
#include "core/machine.h"
#include "optimize/quantize.h"
#include "optimize/report.h"

namespace hearth::cli {

namespace {

namespace fs = std::filesystem;

struct QuantizeFlags {
  std::string model, output, mode = "static", calibration, method = "minmax", eval, report;
  double percentile = 99.99;
  bool per_tensor = false, force = false, no_report = false;
  std::vector<std::string> keep_fp32;
  int threads = 0;
  int weight_bits = 0;
  std::string target_cpu;
};

Status quantize(const QuantizeFlags& f) {
  if (f.output.empty()) return invalid_argument("-o OUT is required");
  std::error_code ec;
  if (fs::exists(f.output, ec) && !f.force) return invalid_argument("'", f.output, "' exists (--force replaces it)");
  optimize::QuantizeOptions o;
  HEARTH_ASSIGN_OR_RETURN(o.mode, optimize::parse_quant_mode(f.mode));
  HEARTH_ASSIGN_OR_RETURN(o.method, optimize::parse_calibration_method(f.method));
  if (!(f.percentile > 50 && f.percentile <= 100)) return invalid_argument("--percentile must be in (50, 100]");
  o.percentile = f.percentile;
  o.per_channel = !f.per_tensor;
  o.keep_fp32 = f.keep_fp32;
  o.threads = f.threads;
  o.weight_bits = f.weight_bits;
  o.target = f.target_cpu;
  HEARTH_ASSIGN_OR_RETURN(std::string bytes, read_file(f.model, "model", size_t{2} << 30));
  // Every input file is checked before any work starts.
  std::vector<optimize::Feed> calibration, eval;
  if (!f.calibration.empty()) {
    HEARTH_ASSIGN_OR_RETURN(calibration, optimize::read_calibration_dir(f.calibration, bytes));
  }
  if (!f.eval.empty()) {
    HEARTH_ASSIGN_OR_RETURN(eval, optimize::read_calibration_dir(f.eval, bytes));
  }
  if (o.mode == optimize::QuantMode::kStatic && calibration.empty())
    return invalid_argument("static quantization needs --calibration DIR (.npy batches); --mode weights needs none");
  HEARTH_ASSIGN_OR_RETURN(optimize::QuantizeResult q, optimize::quantize_model(bytes, o, calibration));
  HEARTH_RETURN_IF_ERROR(write_file_atomically(f.output, q.model_bytes));
  int quantized = 0;
  for (const auto& d : q.nodes) quantized += d.quantized;
  std::cout << "wrote " << f.output << ": " << quantized << " of " << q.nodes.size()
            << " Conv/MatMul/Gemm nodes quantized, " << bytes.size() << " -> " << q.model_bytes.size() << " bytes, "
            << q.weight_bits << "-bit weights (" << q.weight_bits_why << ")\n";
  if (f.no_report) return ok_status();
  if (eval.empty()) eval = calibration;
  if (eval.empty())
    return invalid_argument("the report needs --eval DIR (or --calibration DIR); --no-report skips it");
  HEARTH_ASSIGN_OR_RETURN(optimize::Report r,
                          optimize::measure_report(bytes, q.model_bytes, eval, cpu_info().physical_cores));
  r.command = "hearth optimize quantize --mode " + f.mode +
              (o.mode == optimize::QuantMode::kStatic ? " --method " + f.method : "") + " " + f.model;
  q.model_bytes.clear();
  r.quantize = std::move(q);
  const std::string prefix = f.report.empty() ? f.output : f.report;
  HEARTH_RETURN_IF_ERROR(write_file_atomically(prefix + ".report.json", optimize::report_json(r)));
  HEARTH_RETURN_IF_ERROR(write_file_atomically(prefix + ".report.md", optimize::report_markdown(r)));
  std::cout << "report: " << prefix << ".report.md (size " << r.after.bytes * 100 / std::max<size_t>(1, r.before.bytes)
            << "% of FP32; latency 1 thread " << r.before.latency_ms_1 << " -> " << r.after.latency_ms_1 << " ms)\n";
  return ok_status();
}

}  // namespace

void add_optimize_command(CLI::App& app) {
  CLI::App* opt = app.add_subcommand("optimize", "Model optimization: INT8 quantization (pruning, distillation later)");
  opt->require_subcommand(1);
  auto f = std::make_shared<QuantizeFlags>();
  CLI::App* q = opt->add_subcommand("quantize", "Write an INT8 QDQ model and a before/after report");
  q->add_option("model", f->model, "FP32 ONNX model")->required();
  q->add_option("-o,--output", f->output, "the quantized model")->required();
  q->add_option("--mode", f->mode, "weights (int8 weights only) or static (and calibrated activations)")
      ->capture_default_str();
  q->add_option("--calibration", f->calibration,
                "folder of .npy batches (one input: any *.npy; several: INPUT.KEY.npy)");
  q->add_option("--method", f->method, "calibration: minmax or percentile")->capture_default_str();
  q->add_option("--percentile", f->percentile, "with --method percentile: share of values kept")->capture_default_str();
  q->add_option("--eval", f->eval, "folder of .npy batches for the report (default: the calibration set)");
  q->add_flag("--per-tensor", f->per_tensor, "one scale per weight tensor instead of per output channel");
  q->add_option("--keep-fp32", f->keep_fp32, "node names to leave in FP32");
  q->add_option("--report", f->report, "report path prefix (default: OUT): PREFIX.report.json and .report.md");
  q->add_flag("--no-report", f->no_report, "skip the measured report");
  q->add_flag("--force", f->force, "replace OUT if it exists");
  q->add_option("-t,--threads", f->threads, "calibration threads (0 = one per physical core)");
  q->add_option("--weight-bits", f->weight_bits,
                "7 or 8 (default: 8 where the target CPU has VNNI, 7 where AVX2's int8 products would saturate)");
  q->add_option("--target-cpu", f->target_cpu, "vnni or avx2: the CPU the model is for (default: this one)");
  q->callback([f] { run_reporting(f, quantize); });
}

}  // namespace hearth::cli
