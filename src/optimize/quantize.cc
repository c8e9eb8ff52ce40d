// QDQ quantization (see quantize.h).
#include "optimize/quantize.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "core/machine.h"
#include "core/npy.h"
#include "graph/tensor_proto.h"
#include "runtime/session.h"

namespace hearth::optimize {

namespace fs = std::filesystem;

Result<QuantMode> parse_quant_mode(const std::string& text) {
  if (text == "weights" || text == "dynamic") return QuantMode::kWeights;
  if (text == "static") return QuantMode::kStatic;
  return invalid_argument("unknown quantization mode '", text, "' (expected weights, dynamic or static)");
}

Result<CalibrationMethod> parse_calibration_method(const std::string& text) {
  if (text == "minmax") return CalibrationMethod::kMinMax;
  if (text == "percentile") return CalibrationMethod::kPercentile;
  if (text == "entropy")
    return unimplemented("calibration method 'entropy' is not implemented yet (use minmax or percentile)");
  return invalid_argument("unknown calibration method '", text, "' (expected minmax or percentile)");
}

namespace {

Result<onnx::ModelProto> parse(const std::string& bytes) {
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes)) return invalid_argument("the model is not a readable ONNX file");
  return m;
}

int64_t default_opset(const onnx::ModelProto& m) {
  for (const auto& o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") return o.version();
  return 0;
}

// A running range of one activation: min/max, and for percentiles a symmetric
// histogram whose range doubles (merging bin pairs) when a value falls outside.
class RangeStats {
 public:
  explicit RangeStats(bool histogram) : histogram_(histogram) {}

  void add(const float* v, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const float x = v[i];
      if (!std::isfinite(x)) continue;
      lo_ = std::min(lo_, x), hi_ = std::max(hi_, x);
    }
    if (!histogram_) return;
    const float peak = std::max(std::fabs(lo_), std::fabs(hi_));
    if (radius_ == 0) radius_ = std::max(peak, 1e-6f);
    while (peak > radius_) grow();
    const double per_bin = kBins / (2.0 * radius_);
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(v[i])) continue;
      const auto b = static_cast<int64_t>((v[i] + radius_) * per_bin);
      ++bins_[std::clamp<int64_t>(b, 0, kBins - 1)];
      ++count_;
    }
  }

  // [lo, hi] to quantize over: the extremes, or the percentile cut of each tail.
  std::pair<float, float> range(double keep_percent) const {
    if (lo_ > hi_) return {0.0f, 0.0f};  // nothing seen
    if (!histogram_ || count_ == 0) return {lo_, hi_};
    const double tail = count_ * (100.0 - keep_percent) / 200.0;
    const double width = 2.0 * radius_ / kBins;
    double seen = 0;
    int64_t a = 0;
    for (; a < kBins - 1 && seen + bins_[a] <= tail; ++a) seen += bins_[a];
    seen = 0;
    int64_t b = kBins - 1;
    for (; b > a && seen + bins_[b] <= tail; --b) seen += bins_[b];
    const float lo = static_cast<float>(-radius_ + a * width), hi = static_cast<float>(-radius_ + (b + 1) * width);
    return {std::max(lo, lo_), std::min(hi, hi_)};
  }

 private:
  static constexpr int64_t kBins = 2048;

  void grow() {
    std::vector<double> merged(kBins, 0.0);
    for (int64_t i = 0; i < kBins; ++i) merged[kBins / 4 + i / 2] += bins_[i];
    bins_ = std::move(merged);
    radius_ *= 2;
  }

  bool histogram_;
  float lo_ = std::numeric_limits<float>::infinity(), hi_ = -std::numeric_limits<float>::infinity();
  float radius_ = 0;
  std::vector<double> bins_ = std::vector<double>(kBins, 0.0);
  double count_ = 0;
};

// uint8 asymmetric parameters for [lo, hi] widened to contain 0.
std::pair<float, uint8_t> activation_params(float lo, float hi) {
  lo = std::min(lo, 0.0f), hi = std::max(hi, 0.0f);
  float scale = (hi - lo) / 255.0f;
  if (!(scale > 0) || !std::isfinite(scale)) scale = 1.0f;
  const float zp = std::round(-lo / scale);
  return {scale, static_cast<uint8_t>(std::clamp(zp, 0.0f, 255.0f))};
}

struct WeightPlan {
  int input = 1;    // which input holds the weight
  int axis = 0;     // per-channel axis
  int min_rank = 2;
};

// The quantizable form of a node, or the reason it stays FP32.
Result<WeightPlan> weight_plan(const onnx::NodeProto& n) {
  WeightPlan p;
  if (n.op_type() == "Conv") {
    p.axis = 0, p.min_rank = 3;
  } else if (n.op_type() == "MatMul") {
    p.axis = 1;
  } else if (n.op_type() == "Gemm") {
    int64_t trans_b = 0;
    for (const auto& a : n.attribute())
      if (a.name() == "transB") trans_b = a.i();
    p.axis = trans_b ? 0 : 1;
  } else {
    return unimplemented("no INT8 form in this tool (Conv, MatMul and Gemm only)");
  }
  if (n.input_size() < 2 || n.input(1).empty()) return invalid_argument("no weight input");
  return p;
}

std::string unique_name(const std::string& base, std::set<std::string>* taken) {
  std::string name = base;
  for (int k = 1; taken->count(name); ++k) name = base + "_" + std::to_string(k);
  taken->insert(name);
  return name;
}

void add_scalar(onnx::GraphProto* g, const std::string& name, const Tensor& t) {
  tensor_to_proto(t, name, g->add_initializer());
}

onnx::NodeProto make_node(const std::string& op, const std::vector<std::string>& in, const std::string& out,
                          const std::string& name, int64_t axis = -1) {
  onnx::NodeProto n;
  n.set_op_type(op);
  n.set_name(name);
  for (const auto& s : in) n.add_input(s);
  n.add_output(out);
  if (axis >= 0) {
    auto* a = n.add_attribute();
    a->set_name("axis");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(axis);
  }
  return n;
}

// Names read inside a subgraph (If/Loop/Scan bodies may read outer values).
void count_subgraph_reads(const onnx::AttributeProto& a, std::map<std::string, int>* readers) {
  auto walk = [&](const onnx::GraphProto& sub) {
    for (const auto& n : sub.node()) {
      for (const auto& s : n.input()) ++(*readers)[s];
      for (const auto& inner : n.attribute()) count_subgraph_reads(inner, readers);
    }
  };
  if (a.has_g()) walk(a.g());
  for (const auto& sub : a.graphs()) walk(sub);
}

// Runs the FP32 model on the calibration batches with `names` exposed as
// outputs and feeds each batch's values to their RangeStats.
Status calibrate(const onnx::ModelProto& model, const std::vector<std::string>& names,
                 const std::vector<Feed>& batches, const QuantizeOptions& o, std::map<std::string, RangeStats>* stats) {
  onnx::ModelProto m = model;
  std::set<std::string> inputs, outputs;
  for (const auto& v : m.graph().input()) inputs.insert(v.name());
  for (const auto& v : m.graph().output()) outputs.insert(v.name());
  std::vector<std::string> exposed;
  for (const auto& name : names) {
    if (inputs.count(name)) continue;  // read from the feed itself
    if (!outputs.count(name)) m.mutable_graph()->add_output()->set_name(name);
    exposed.push_back(name);
  }
  const std::string bytes = m.SerializeAsString();
  SessionOptions so;
  so.intra_op_threads = o.threads;
  HEARTH_ASSIGN_OR_RETURN(auto session, Session::load_bytes(bytes.data(), bytes.size(), "", so));
  std::map<std::string, size_t> out_index;
  for (size_t i = 0; i < session->outputs().size(); ++i) out_index[session->outputs()[i].name] = i;
  for (size_t b = 0; b < batches.size(); ++b) {
    auto out = session->run(batches[b]);
    if (!out.ok()) return out.status().with_context("calibration batch " + std::to_string(b + 1));
    for (const auto& name : names) {
      const Tensor* t = nullptr;
      if (inputs.count(name)) {
        for (const auto& [n, v] : batches[b])
          if (n == name) t = &v;
      } else if (auto it = out_index.find(name); it != out_index.end()) {
        t = &(*out)[it->second];
      }
      if (t && t->dtype() == DataType::kFloat) stats->at(name).add(t->data<float>(), t->numel());
    }
  }
  return ok_status();
}

}  // namespace

Result<std::vector<Feed>> read_calibration_dir(const std::string& dir, const std::string& model_bytes) {
  HEARTH_ASSIGN_OR_RETURN(auto session, Session::load_bytes(model_bytes.data(), model_bytes.size(), ""));
  const auto& inputs = session->inputs();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return not_found("calibration folder '", dir, "' does not exist");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".npy") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) return invalid_argument("calibration folder '", dir, "' has no .npy files");
  std::map<std::string, Feed> by_key;
  for (const auto& f : files) {
    std::string input, key;
    const std::string stem = f.stem().string();
    if (inputs.size() == 1) {
      input = inputs[0].name, key = stem;
    } else {
      const size_t dot = stem.rfind('.');
      if (dot == std::string::npos)
        return invalid_argument("calibration file '", f.string(),
                                "': the model has several inputs, so files must be named INPUT.KEY.npy");
      input = stem.substr(0, dot), key = stem.substr(dot + 1);
    }
    const ValueInfo* want = nullptr;
    for (const auto& v : inputs)
      if (v.name == input) want = &v;
    if (!want) return invalid_argument("calibration file '", f.string(), "' names no input of the model ('", input, "')");
    HEARTH_ASSIGN_OR_RETURN(Tensor t, read_npy(f.string()));
    bool fits = t.dtype() == want->dtype && (!want->has_shape || t.rank() == want->dims.size());
    for (size_t d = 0; fits && want->has_shape && d < want->dims.size(); ++d)
      fits = want->dims[d] < 0 || want->dims[d] == t.dim(d);
    if (!fits)
      return invalid_argument("calibration file '", f.string(), "' holds ", t.describe(), " but input '", want->name,
                              "' is ", want->describe());
    by_key[key].emplace_back(input, std::move(t));
  }
  std::vector<Feed> batches;
  for (auto& [key, feed] : by_key) {
    if (feed.size() != inputs.size())
      return invalid_argument("calibration batch '", key, "' has ", feed.size(), " of the model's ", inputs.size(),
                              " inputs");
    batches.push_back(std::move(feed));
  }
  return batches;
}

Result<QuantizeResult> quantize_model(const std::string& model_bytes, const QuantizeOptions& o,
                                      const std::vector<Feed>& calibration) {
  HEARTH_ASSIGN_OR_RETURN(onnx::ModelProto m, parse(model_bytes));
  if (o.mode == QuantMode::kStatic && calibration.empty())
    return invalid_argument("static quantization needs calibration data (--calibration DIR)");
  const int64_t opset = default_opset(m);
  if (opset < 10) return unimplemented("QuantizeLinear needs opset 10 or later; the model has ", opset);
  const bool per_channel = o.per_channel && opset >= 13;
  onnx::GraphProto* g = m.mutable_graph();
  for (const auto& t : g->initializer())
    if (t.data_location() == onnx::TensorProto::EXTERNAL)
      return unimplemented("models with external data are not quantized yet (initializer '", t.name(), "')");

  std::map<std::string, int> init_index;
  for (int i = 0; i < g->initializer_size(); ++i) init_index[g->initializer(i).name()] = i;
  std::set<std::string> taken;
  for (const auto& n : g->node())
    for (const auto& s : n.output()) taken.insert(s);
  for (const auto& t : g->initializer()) taken.insert(t.name());
  for (const auto& v : g->input()) taken.insert(v.name());
  std::set<std::string> keep(o.keep_fp32.begin(), o.keep_fp32.end());

  QuantizeResult result;
  if (o.weight_bits != 0 && o.weight_bits != 7 && o.weight_bits != 8)
    return invalid_argument("weight bits must be 7 or 8, got ", o.weight_bits);
  if (!o.target.empty() && o.target != "vnni" && o.target != "avx2")
    return invalid_argument("unknown target CPU '", o.target, "' (expected vnni or avx2)");
  if (o.weight_bits != 0) {
    result.weight_bits = o.weight_bits, result.weight_bits_why = "asked for";
  } else if (!o.target.empty()) {
    result.weight_bits = o.target == "vnni" ? 8 : 7;
    result.weight_bits_why = "for target CPU " + o.target;
  } else {
    const CpuInfo& c = cpu_info();
    const bool vnni = c.avx512_vnni || c.avx_vnni || c.amx_int8;
    result.weight_bits = vnni ? 8 : 7;
    result.weight_bits_why = vnni ? "this CPU has VNNI: int8 products are exact"
                                  : "this CPU has no VNNI: 7-bit weights keep AVX2's 16-bit sums from saturating";
  }
  const float qmax = result.weight_bits == 7 ? 63.0f : 127.0f;
  struct Planned {
    int node;
    WeightPlan plan;
  };
  std::vector<Planned> planned;
  std::map<std::string, int> weight_readers;  // a weight shared by several nodes is quantized once
  for (int i = 0; i < g->node_size(); ++i) {
    const auto& n = g->node(i);
    NodeDecision d;
    d.node = n.name().empty() ? n.op_type() + "#" + std::to_string(i) : n.name();
    d.op_type = n.op_type();
    auto plan = weight_plan(n);
    if (!plan.ok()) {
      if (plan.status().code() != StatusCode::kUnimplemented) {
        d.why = std::string(plan.status().message());
        result.nodes.push_back(d);
      }
      continue;  // other op types are not listed one by one
    }
    if (keep.count(n.name())) {
      d.why = "kept in FP32 (--keep-fp32)";
    } else if (!init_index.count(n.input(plan->input))) {
      d.why = "kept in FP32: its weight is computed, not a constant";
    } else {
      const auto& w = g->initializer(init_index[n.input(plan->input)]);
      if (w.data_type() != onnx::TensorProto::FLOAT) d.why = "kept in FP32: its weight is not float32";
      else if (w.dims_size() < plan->min_rank) d.why = "kept in FP32: its weight has an unexpected rank";
      else {
        d.quantized = true;
        planned.push_back({i, *plan});
        ++weight_readers[n.input(plan->input)];
      }
    }
    result.nodes.push_back(d);
  }
  for (const auto& k : keep) {
    bool found = false;
    for (const auto& n : g->node()) found |= n.name() == k;
    if (!found) return invalid_argument("--keep-fp32 names no node of the model: '", k, "'");
  }

  // Activation inputs to quantize (static): input 0 of each planned node, when computed.
  std::vector<std::string> activations;
  if (o.mode == QuantMode::kStatic) {
    std::set<std::string> seen;
    for (const auto& p : planned) {
      const std::string& x = g->node(p.node).input(0);
      if (x.empty() || init_index.count(x) || !seen.insert(x).second) continue;
      activations.push_back(x);
    }
    std::map<std::string, RangeStats> stats;
    for (const auto& a : activations) stats.emplace(a, RangeStats(o.method == CalibrationMethod::kPercentile));
    HEARTH_RETURN_IF_ERROR(calibrate(m, activations, calibration, o, &stats));
    for (const auto& a : activations) result.ranges[a] = stats.at(a).range(o.percentile);
    result.calibration_batches = static_cast<int>(calibration.size());
  }

  // Every reader of each name (a graph output counts as one), to know whether a
  // float weight may be replaced or must stay beside its int8 form.
  std::map<std::string, int> readers;
  for (const auto& n : g->node()) {
    for (const auto& s : n.input()) ++readers[s];
    for (const auto& a : n.attribute()) count_subgraph_reads(a, &readers);
  }
  for (const auto& v : g->output()) ++readers[v.name()];
  for (const auto& v : g->input()) readers[v.name()] += init_index.count(v.name()) ? 1 : 0;  // overridable

  // New nodes go right before their first reader, which keeps the order topological.
  std::map<int, std::vector<onnx::NodeProto>> before;
  std::map<std::string, std::string> weight_dq;  // weight -> its dequantized name
  for (const auto& p : planned) {
    onnx::NodeProto& n = *g->mutable_node(p.node);
    const std::string w_name = n.input(p.plan.input);
    if (!weight_dq.count(w_name)) {
      onnx::TensorProto& wp = *g->mutable_initializer(init_index[w_name]);
      HEARTH_ASSIGN_OR_RETURN(Tensor w, tensor_from_proto(wp, std::string()));
      const int64_t axis = per_channel ? p.plan.axis : -1;
      const int64_t channels = axis >= 0 ? w.dim(static_cast<size_t>(axis)) : 1;
      // Elements of one channel are `inner` apart in runs of `inner`, `outer` runs per channel.
      int64_t inner = 1;
      for (size_t d = static_cast<size_t>(std::max<int64_t>(axis, 0)) + 1; d < w.rank(); ++d) inner *= w.dim(d);
      if (axis < 0) inner = w.numel();
      const int64_t outer = w.numel() / std::max<int64_t>(1, channels * inner);
      Tensor q(DataType::kInt8, w.shape());
      Tensor scales(DataType::kFloat, axis >= 0 ? Shape{channels} : Shape{});
      Tensor zps = Tensor::zeros(DataType::kInt8, axis >= 0 ? Shape{channels} : Shape{});
      const float* wd = w.data<float>();
      int8_t* qd = q.data<int8_t>();
      for (int64_t c = 0; c < channels; ++c) {
        float peak = 0;
        for (int64_t o2 = 0; o2 < outer; ++o2)
          for (int64_t i = 0; i < inner; ++i) peak = std::max(peak, std::fabs(wd[(o2 * channels + c) * inner + i]));
        const float scale = peak > 0 ? peak / qmax : 1.0f;
        scales.data<float>()[c] = scale;
        for (int64_t o2 = 0; o2 < outer; ++o2)
          for (int64_t i = 0; i < inner; ++i) {
            const int64_t at = (o2 * channels + c) * inner + i;
            qd[at] = static_cast<int8_t>(std::clamp(std::round(wd[at] / scale), -qmax, qmax));
          }
      }
      result.weights_quantized += w.numel();
      const std::string q_name = unique_name(w_name + "_quantized", &taken);
      const std::string s_name = unique_name(w_name + "_scale", &taken);
      const std::string z_name = unique_name(w_name + "_zero_point", &taken);
      const std::string dq_name = unique_name(w_name + "_dequantized", &taken);
      if (readers[w_name] == weight_readers[w_name]) {
        wp.Clear();  // only quantized nodes read it: the int8 form takes its place
        tensor_to_proto(q, q_name, &wp);
      } else {
        tensor_to_proto(q, q_name, g->add_initializer());  // others still read the float one
      }
      add_scalar(g, s_name, scales);
      add_scalar(g, z_name, zps);
      before[p.node].push_back(
          make_node("DequantizeLinear", {q_name, s_name, z_name}, dq_name, unique_name(dq_name + "_node", &taken), axis));
      weight_dq[w_name] = dq_name;
    }
    n.set_input(p.plan.input, weight_dq[w_name]);
  }
  // Activations: one Q/DQ pair each, before the first planned reader, read by every planned reader.
  std::map<std::string, std::string> act_dq;
  for (const auto& p : planned) {
    onnx::NodeProto& n = *g->mutable_node(p.node);
    const std::string x = n.input(0);
    if (!result.ranges.count(x)) continue;
    if (!act_dq.count(x)) {
      const auto [lo, hi] = result.ranges[x];
      const auto [scale, zp] = activation_params(lo, hi);
      const std::string s_name = unique_name(x + "_scale", &taken), z_name = unique_name(x + "_zero_point", &taken);
      const std::string q_name = unique_name(x + "_quantized", &taken), dq_name = unique_name(x + "_dequantized", &taken);
      add_scalar(g, s_name, Tensor::scalar<float>(scale));
      add_scalar(g, z_name, Tensor::scalar<uint8_t>(zp));
      before[p.node].push_back(make_node("QuantizeLinear", {x, s_name, z_name}, q_name, unique_name(q_name + "_node", &taken)));
      before[p.node].push_back(
          make_node("DequantizeLinear", {q_name, s_name, z_name}, dq_name, unique_name(dq_name + "_node", &taken)));
      act_dq[x] = dq_name;
    }
    n.set_input(0, act_dq[x]);
  }
  for (auto& d : result.nodes) {
    if (!d.quantized) continue;
    d.why = std::to_string(result.weight_bits) + "-bit weights " + (per_channel ? "per output channel" : "per tensor") +
            (o.mode == QuantMode::kStatic ? ", uint8 activations" : ", float32 activations");
  }
  if (o.per_channel && !per_channel)
    for (auto& d : result.nodes)
      if (d.quantized) d.why += " (per tensor: per-channel DequantizeLinear needs opset 13, the model has " +
                                std::to_string(opset) + ")";

  // Rebuild the node list with the new nodes in place.
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (int i = 0; i < g->node_size(); ++i) {
    if (auto it = before.find(i); it != before.end())
      for (auto& n : it->second) *nodes.Add() = std::move(n);
    *nodes.Add() = g->node(i);
  }
  g->mutable_node()->Swap(&nodes);
  m.set_producer_name(m.producer_name().empty() ? "hearth optimize" : m.producer_name() + " + hearth optimize");
  result.model_bytes = m.SerializeAsString();
  return result;
}

}  // namespace hearth::optimize
