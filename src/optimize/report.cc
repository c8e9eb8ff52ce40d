#include "optimize/report.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/machine.h"
#include "runtime/session.h"

namespace hearth::optimize {

namespace {

void count_parameters(const std::string& bytes, ModelStats* s) {
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes)) return;
  for (const auto& t : m.graph().initializer()) {
    int64_t n = 1;
    for (int64_t d : t.dims()) n *= d;
    s->parameters += n;
    if (t.data_type() == onnx::TensorProto::INT8 || t.data_type() == onnx::TensorProto::UINT8) s->int8_parameters += n;
  }
}

Result<double> median_latency_ms(const std::string& bytes, const Feed& feed, int threads) {
  SessionOptions so;
  so.intra_op_threads = threads;
  HEARTH_ASSIGN_OR_RETURN(auto s, Session::load_bytes(bytes.data(), bytes.size(), "", so));
  for (int i = 0; i < 3; ++i) HEARTH_RETURN_IF_ERROR(s->run(feed).status());
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  while (ms.size() < 10 || (ms.size() < 200 && std::chrono::steady_clock::now() - start < std::chrono::seconds(1))) {
    const auto t0 = std::chrono::steady_clock::now();
    HEARTH_RETURN_IF_ERROR(s->run(feed).status());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

std::string fixed(double v, int digits) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(digits) << v;
  return o.str();
}

}  // namespace

Result<Report> measure_report(const std::string& before_bytes, const std::string& after_bytes,
                              const std::vector<Feed>& eval, int threads_n) {
  if (eval.empty()) return invalid_argument("the report needs at least one evaluation batch");
  Report r;
  r.cpu = cpu_info().summary();
  r.threads_n = std::max(1, threads_n);
  r.before.bytes = before_bytes.size(), r.after.bytes = after_bytes.size();
  count_parameters(before_bytes, &r.before);
  count_parameters(after_bytes, &r.after);
  HEARTH_ASSIGN_OR_RETURN(r.before.latency_ms_1, median_latency_ms(before_bytes, eval[0], 1));
  HEARTH_ASSIGN_OR_RETURN(r.after.latency_ms_1, median_latency_ms(after_bytes, eval[0], 1));
  HEARTH_ASSIGN_OR_RETURN(r.before.latency_ms_n, median_latency_ms(before_bytes, eval[0], r.threads_n));
  HEARTH_ASSIGN_OR_RETURN(r.after.latency_ms_n, median_latency_ms(after_bytes, eval[0], r.threads_n));

  HEARTH_ASSIGN_OR_RETURN(auto a, Session::load_bytes(before_bytes.data(), before_bytes.size(), ""));
  HEARTH_ASSIGN_OR_RETURN(auto b, Session::load_bytes(after_bytes.data(), after_bytes.size(), ""));
  for (const auto& o : a->outputs()) r.outputs.push_back(OutputAgreement{o.name});
  std::vector<int64_t> agree(r.outputs.size(), 0);
  for (const auto& feed : eval) {
    HEARTH_ASSIGN_OR_RETURN(auto ya, a->run(feed));
    HEARTH_ASSIGN_OR_RETURN(auto yb, b->run(feed));
    for (size_t k = 0; k < r.outputs.size() && k < ya.size() && k < yb.size(); ++k) {
      if (ya[k].dtype() != DataType::kFloat || yb[k].dtype() != DataType::kFloat || ya[k].shape() != yb[k].shape())
        continue;
      const float* x = ya[k].data<float>();
      const float* y = yb[k].data<float>();
      double dot = 0, nx = 0, ny = 0, diff = 0;
      for (int64_t i = 0; i < ya[k].numel(); ++i) {
        dot += double(x[i]) * y[i], nx += double(x[i]) * x[i], ny += double(y[i]) * y[i];
        diff += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
      }
      OutputAgreement& oa = r.outputs[k];
      const double cos = nx > 0 && ny > 0 ? dot / std::sqrt(nx * ny) : (nx == ny ? 1.0 : 0.0);
      oa.cosine_mean += cos;
      oa.cosine_min = std::min(oa.cosine_min, cos);
      oa.rel_l2_max = std::max(oa.rel_l2_max, nx > 0 ? std::sqrt(diff / nx) : std::sqrt(diff));
      if (ya[k].rank() == 2 && ya[k].dim(1) > 1) {
        const int64_t rows = ya[k].dim(0), cols = ya[k].dim(1);
        for (int64_t row = 0; row < rows; ++row) {
          const float* xr = x + row * cols;
          const float* yr = y + row * cols;
          agree[k] += std::max_element(xr, xr + cols) - xr == std::max_element(yr, yr + cols) - yr;
        }
        oa.rows += rows;
      }
    }
  }
  for (size_t k = 0; k < r.outputs.size(); ++k) {
    r.outputs[k].cosine_mean /= static_cast<double>(eval.size());
    if (r.outputs[k].rows > 0) r.outputs[k].top1_agreement = double(agree[k]) / double(r.outputs[k].rows);
  }
  r.eval_batches = static_cast<int>(eval.size());
  return r;
}

std::string report_json(const Report& r) {
  auto stats = [](const ModelStats& s) {
    return nlohmann::json{{"bytes", s.bytes},
                          {"parameters", s.parameters},
                          {"int8_parameters", s.int8_parameters},
                          {"latency_ms_1_thread", s.latency_ms_1},
                          {"latency_ms_n_threads", s.latency_ms_n}};
  };
  nlohmann::json j = {{"command", r.command},     {"cpu", r.cpu},           {"threads_n", r.threads_n},
                      {"before", stats(r.before)}, {"after", stats(r.after)}, {"eval_batches", r.eval_batches}};
  j["size_ratio"] = r.before.bytes ? double(r.after.bytes) / double(r.before.bytes) : 0.0;
  j["speedup_1_thread"] = r.after.latency_ms_1 > 0 ? r.before.latency_ms_1 / r.after.latency_ms_1 : 0.0;
  j["speedup_n_threads"] = r.after.latency_ms_n > 0 ? r.before.latency_ms_n / r.after.latency_ms_n : 0.0;
  for (const auto& o : r.outputs) {
    nlohmann::json oj = {{"name", o.name}, {"cosine_mean", o.cosine_mean}, {"cosine_min", o.cosine_min},
                         {"rel_l2_max", o.rel_l2_max}};
    if (o.top1_agreement >= 0) oj["top1_agreement"] = o.top1_agreement, oj["rows"] = o.rows;
    j["outputs"].push_back(oj);
  }
  for (const auto& d : r.quantize.nodes)
    j["nodes"].push_back({{"node", d.node}, {"op_type", d.op_type}, {"quantized", d.quantized}, {"why", d.why}});
  for (const auto& [name, range] : r.quantize.ranges)
    j["activation_ranges"][name] = {range.first, range.second};
  j["calibration_batches"] = r.quantize.calibration_batches;
  j["weight_bits"] = r.quantize.weight_bits;
  j["weight_bits_why"] = r.quantize.weight_bits_why;
  return j.dump(2) + "\n";
}

std::string report_markdown(const Report& r) {
  std::ostringstream o;
  o << "# " << r.command << "\n\nCPU: " << r.cpu << "\n\n";
  o << "| | before | after | after / before |\n| --- | --- | --- | --- |\n";
  auto row = [&](const char* what, double a, double b, int digits) {
    o << "| " << what << " | " << fixed(a, digits) << " | " << fixed(b, digits) << " | "
      << (a > 0 ? fixed(b / a, 3) : "-") << " |\n";
  };
  row("file size (bytes)", double(r.before.bytes), double(r.after.bytes), 0);
  row("parameters", double(r.before.parameters), double(r.after.parameters), 0);
  row("of which 8-bit", double(r.before.int8_parameters), double(r.after.int8_parameters), 0);
  row("latency, 1 thread (ms, median)", r.before.latency_ms_1, r.after.latency_ms_1, 3);
  o << "| latency, " << r.threads_n << " threads (ms, median) | " << fixed(r.before.latency_ms_n, 3) << " | "
    << fixed(r.after.latency_ms_n, 3) << " | "
    << (r.before.latency_ms_n > 0 ? fixed(r.after.latency_ms_n / r.before.latency_ms_n, 3) : "-") << " |\n";
  o << "\nAgreement with the original on " << r.eval_batches << " evaluation batches:\n\n";
  o << "| output | cosine (mean) | cosine (worst batch) | relative L2 (worst batch) | top-1 agreement |\n";
  o << "| --- | --- | --- | --- | --- |\n";
  for (const auto& a : r.outputs)
    o << "| " << a.name << " | " << fixed(a.cosine_mean, 6) << " | " << fixed(a.cosine_min, 6) << " | "
      << fixed(a.rel_l2_max, 5) << " | "
      << (a.top1_agreement >= 0 ? fixed(100 * a.top1_agreement, 2) + "% of " + std::to_string(a.rows) : "-")
      << " |\n";
  int quantized = 0;
  for (const auto& d : r.quantize.nodes) quantized += d.quantized;
  o << "\nNodes: " << quantized << " of " << r.quantize.nodes.size() << " Conv/MatMul/Gemm quantized";
  if (r.quantize.calibration_batches) o << ", activations calibrated on " << r.quantize.calibration_batches << " batches";
  o << "; " << r.quantize.weight_bits << "-bit weights (" << r.quantize.weight_bits_why << ").\n\n";
  bool header = false;
  for (const auto& d : r.quantize.nodes) {
    if (d.quantized) continue;
    if (!header) o << "Left in FP32:\n\n", header = true;
    o << "- " << d.node << " (" << d.op_type << "): " << d.why << "\n";
  }
  o << "\nLatency is Hearth's on this CPU. Hearth runs the DequantizeLinear of a constant weight once, at\n"
       "load (constant folding), so weight-only models run at FP32 speed; static models add a\n"
       "QuantizeLinear/DequantizeLinear pass per quantized activation until int8 kernels take\n"
       "those patterns. Other runtimes (ONNX Runtime) fuse the QDQ pairs into int8 kernels.\n";
  return o.str();
}

}  // namespace hearth::optimize
