// `hearth tune MODEL`: measures each layer's candidate paths on this machine
// with the model's real shapes and records the fastest in the tuning cache
// (kernels/path_tuner.h), which every later session on this machine reads.
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/inputs.h"
#include "cli/plan.h"
#include "core/machine.h"

namespace hearth::cli {

Result<std::unique_ptr<Session>> run_for_plan(const PlanRun& r, const SessionOptions& options) {
  if (r.batch < 1) return invalid_argument("--batch must be >= 1");
  SessionOptions so = options;
  so.intra_op_threads = r.threads;
  HEARTH_ASSIGN_OR_RETURN(auto session, Session::load_file(r.model, so));
  HEARTH_ASSIGN_OR_RETURN(auto shapes, parse_shape_args(r.shapes));
  HEARTH_ASSIGN_OR_RETURN(Feeds feeds, random_inputs(session->inputs(), {}, r.batch, shapes, 42));
  HEARTH_RETURN_IF_ERROR(session->run(feeds).status());
  return session;
}

void print_plan(const std::vector<PathChoice>& plan, bool json, std::ostream& out) {
  if (json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& c : plan)
      j.push_back({{"node", c.node}, {"layer", c.layer}, {"path", c.path}, {"reason", c.reason},
                   {"us", c.us}, {"detail", c.detail}});
    out << nlohmann::json{{"cpu", cpu_info().summary()}, {"layers", j}}.dump(2) << "\n";
    return;
  }
  out << "cpu: " << cpu_info().summary() << "\n";
  std::map<std::string, int> by_path;
  for (const auto& c : plan) {
    ++by_path[c.path];
    out << c.node << "\n    " << c.path << (c.detail.empty() ? "" : " (" + c.detail + ")") << ", " << c.reason;
    if (!c.us.empty()) {
      out << ":";
      for (const auto& [name, us] : c.us) out << " " << name << " " << std::fixed << std::setprecision(1) << us << " us";
    }
    out << "\n";
  }
  out << plan.size() << " layers:";
  for (const auto& [path, n] : by_path) out << " " << path << " " << n;
  out << "\n";
}

namespace {

struct TuneOptions {
  PlanRun run;
  double budget_ms = 60000;
  bool json = false;
  bool again = false;
};

Status tune(const TuneOptions& o) {
  std::string warning;
  auto cache = TuningCache::open(TuningCache::default_path(), &warning);
  if (cache->path().empty())
    return invalid_argument("no tuning cache to write: HEARTH_TUNING_CACHE is 'off' and there is no home folder");
  if (!warning.empty()) std::cerr << "warning: " << warning << " (it will be rewritten)\n";
  // --again measures every layer anew: the cache is consulted through an empty copy.
  auto target = o.again ? TuningCache::open("") : cache;
  SessionOptions so;
  so.tuning = TuningMode::kMeasure;
  so.tune_budget_ms = o.budget_ms;
  so.tuning_cache = target;
  HEARTH_ASSIGN_OR_RETURN(auto session, run_for_plan(o.run, so));
  if (o.again)
    for (const auto& c : session->plan_report())
      if (c.reason == "measured") cache->record(c.layer, TuningCache::Entry{c.path, c.us});
  HEARTH_RETURN_IF_ERROR(cache->save());
  print_plan(session->plan_report(), o.json, std::cout);
  if (!o.json) std::cout << "tuning cache: " << cache->path() << " (" << cache->size() << " entries)\n";
  return ok_status();
}

}  // namespace

void add_plan_run_options(CLI::App* cmd, PlanRun& r) {
  cmd->add_option("model", r.model, "ONNX model file")->required();
  cmd->add_option("-b,--batch", r.batch, "size of dynamic first dims of the random inputs")->capture_default_str();
  cmd->add_option("--shape", r.shapes, "NAME=1x3x224x224 for inputs with dynamic dims");
  cmd->add_option("-t,--threads", r.threads, "intra-op threads (0 = one per physical core); part of the key");
}

void add_tune_command(CLI::App& app) {
  auto o = std::make_shared<TuneOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tune", "Measure each layer's candidate paths on this machine and record the fastest in the tuning cache");
  add_plan_run_options(cmd, o->run);
  cmd->add_option("--tune-budget-ms", o->budget_ms, "stop measuring after this many ms (the rest use heuristics)")
      ->capture_default_str();
  cmd->add_flag("--again", o->again, "measure layers the cache already has, too");
  cmd->add_flag("--json", o->json, "print the plan as JSON");
  cmd->callback([o] { run_reporting(o, tune); });
}

}  // namespace hearth::cli
