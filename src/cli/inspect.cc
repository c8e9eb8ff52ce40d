// `hearth inspect`: what a model expects and what it costs: inputs, outputs,
// opsets, op histogram, parameter count and an estimate of FLOPs per run.
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>

#include "cli/commands.h"
#include "cli/plan.h"
#include "graph/onnx_import.h"

namespace hearth::cli {

namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
  bool plan = false;
  PlanRun run;
  std::string tuning = "cached";
};

// Known dims of a value from shape inference (dynamic dims count as 1), or empty.
Shape known_shape(const Graph& g, const std::string& name) {
  const ValueInfo* vi = nullptr;
  if (auto it = g.value_info.find(name); it != g.value_info.end()) vi = &it->second;
  for (const auto& v : g.inputs) if (v.name == name) vi = &v;
  for (const auto& v : g.outputs) if (v.name == name && v.has_shape) vi = &v;
  if (auto it = g.initializers.find(name); it != g.initializers.end()) return it->second.shape();
  if (!vi || !vi->has_shape) return {};
  Shape s;
  for (int64_t d : vi->dims) s.push_back(d < 0 ? 1 : d);
  return s;
}

// Multiply-adds x2 for the ops that dominate real models; others are ignored.
int64_t node_flops(const Graph& g, const Node& n) {
  auto in0 = n.inputs.empty() ? Shape{} : known_shape(g, n.inputs[0]);
  auto in1 = n.inputs.size() < 2 ? Shape{} : known_shape(g, n.inputs[1]);
  auto out = n.outputs.empty() ? Shape{} : known_shape(g, n.outputs[0]);
  if ((n.op_type == "Conv" || n.op_type == "ConvInteger" || n.op_type == "QLinearConv") && !out.empty()) {
    Shape w = n.op_type == "QLinearConv" ? (n.inputs.size() > 3 ? known_shape(g, n.inputs[3]) : Shape{}) : in1;
    if (w.size() < 2) return 0;
    int64_t k = 1;
    for (size_t i = 1; i < w.size(); ++i) k *= w[i];
    return 2 * shape_numel(out) * k;
  }
  if ((n.op_type == "MatMul" || n.op_type == "MatMulInteger") && !out.empty() && !in0.empty()) {
    return 2 * shape_numel(out) * in0.back();
  }
  if (n.op_type == "Gemm" && !out.empty() && in0.size() == 2) {
    int64_t k = n.attr_int("transA", 0) ? in0[0] : in0[1];
    return 2 * shape_numel(out) * k;
  }
  return 0;
}

// --plan: the path each layer takes on this machine and why (measured by
// `hearth tune`, or the heuristic), after one run on random inputs.
Status inspect_plan(const InspectOptions& o) {
  SessionOptions so;
  HEARTH_ASSIGN_OR_RETURN(so.tuning, parse_tuning_mode(o.tuning));
  PlanRun r = o.run;
  r.model = o.model;
  HEARTH_ASSIGN_OR_RETURN(auto session, run_for_plan(r, so));
  print_plan(session->plan_report(), o.json, std::cout);
  return ok_status();
}

Status inspect_model(const InspectOptions& o) {
  if (o.plan) return inspect_plan(o);
  HEARTH_ASSIGN_OR_RETURN(Model m, load_model_file(o.model));
  const Graph& g = m.graph;
  std::map<std::string, int> histogram;
  int64_t flops = 0;
  for (const auto& n : g.nodes) {
    histogram[n.domain.empty() ? n.op_type : n.domain + "." + n.op_type]++;
    flops += node_flops(g, n);
  }
  int64_t params = 0;
  for (const auto& [name, t] : g.initializers) params += t.numel();
  if (o.json) {
    nlohmann::json j;
    for (const auto& v : g.inputs) j["inputs"].push_back({{"name", v.name}, {"type", v.describe()}});
    for (const auto& v : g.outputs) j["outputs"].push_back({{"name", v.name}, {"type", v.describe()}});
    for (const auto& [d, v] : m.opsets) j["opsets"][d.empty() ? "ai.onnx" : d] = v;
    j["ops"] = histogram;
    j["nodes"] = g.nodes.size();
    j["parameters"] = params;
    j["flops"] = flops;
    j["producer"] = m.producer_name + " " + m.producer_version;
    std::cout << j.dump(2) << "\n";
    return ok_status();
  }
  std::cout << "model:      " << o.model << "\n";
  std::cout << "producer:   " << m.producer_name << " " << m.producer_version << " (IR version " << m.ir_version << ")\n";
  std::cout << "opsets:    ";
  for (const auto& [d, v] : m.opsets) std::cout << " " << (d.empty() ? "ai.onnx" : d) << "=" << v;
  std::cout << "\ninputs:\n";
  for (const auto& v : g.inputs) std::cout << "  " << v.name << ": " << v.describe() << "\n";
  std::cout << "outputs:\n";
  for (const auto& v : g.outputs) std::cout << "  " << v.name << ": " << v.describe() << "\n";
  std::cout << "parameters: " << params << " in " << g.initializers.size() << " initializers\n";
  std::cout << "FLOPs:      " << flops << " per run (dynamic dims taken as 1; Conv/Gemm/MatMul only)\n";
  std::cout << "nodes:      " << g.nodes.size() << "\n";
  for (const auto& [op, count] : histogram) std::cout << "  " << op << ": " << count << "\n";
  return ok_status();
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a model's inputs, outputs, opsets, ops, parameters and FLOPs");
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_flag("--plan", o->plan,
                "run the model once on random inputs and show the path each layer takes on this CPU, and why");
  cmd->add_option("-b,--batch", o->run.batch, "with --plan: size of dynamic first dims")->capture_default_str();
  cmd->add_option("--shape", o->run.shapes, "with --plan: NAME=1x3x224x224 for inputs with dynamic dims");
  cmd->add_option("-t,--threads", o->run.threads, "with --plan: intra-op threads (0 = one per physical core)");
  cmd->add_option("--tuning", o->tuning, "with --plan: heuristic, cached (the default) or measure")
      ->capture_default_str();
  cmd->callback([o] {
    Status s = inspect_model(*o);
    if (!s.ok()) report_error(s);
  });
}

}  // namespace hearth::cli
