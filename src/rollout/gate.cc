// The checks a candidate passes before it takes traffic (see gate.h).
#include "rollout/gate.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>

#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "core/npy.h"
#include "repository/model_config.h"
#include "rollout/observations.h"
#include "rollout/statistics.h"
#include "serving/model_version.h"

namespace hearth::rollout {

namespace fs = std::filesystem;
using serving::InferRequest;
using serving::InferResponse;
using serving::ModelVersion;

namespace {

constexpr int64_t kMaxGoldenSamples = 10000;

Result<InferResponse> run_on(ModelVersion& version, InferRequest request) {
  auto promise = std::make_shared<std::promise<Result<InferResponse>>>();
  auto future = promise->get_future();
  version.submit(std::move(request), [promise](Result<InferResponse> r) { promise->set_value(std::move(r)); });
  return future.get();
}

bool dims_compatible(const google::protobuf::RepeatedField<int64_t>& a, const google::protobuf::RepeatedField<int64_t>& b) {
  if (a.size() != b.size()) return false;
  for (int i = 0; i < a.size(); ++i)
    if (a[i] != b[i] && a[i] >= 0 && b[i] >= 0) return false;
  return true;
}

template <typename Tensors>
std::string tensors_mismatch(const Tensors& champion, const Tensors& candidate, const char* what) {
  for (const auto& t : champion) {
    auto it = std::find_if(candidate.begin(), candidate.end(), [&](const auto& c) { return c.name() == t.name(); });
    if (it == candidate.end()) return str_cat("the candidate has no ", what, " '", t.name(), "'");
    if (it->data_type() != t.data_type())
      return str_cat(what, " '", t.name(), "' is ", inference::DataType_Name(it->data_type()), " in the candidate, ",
                     inference::DataType_Name(t.data_type()), " in the champion");
    if (!dims_compatible(t.dims(), it->dims())) return str_cat(what, " '", t.name(), "' has other dims in the candidate");
  }
  return "";
}

// One golden sample (or zeros) as a request of `config`'s inputs.
struct Samples {
  std::map<std::string, Tensor> inputs;  // [N, ...] per input name
  Tensor labels;                         // [N] integer, or undefined
  std::map<std::string, Tensor> expected;
  int64_t count = 0;
};

Result<Tensor> row_of(const Tensor& all, int64_t i) {
  if (all.rank() < 1 || i < 0 || i >= all.dim(0)) return invalid_argument("no golden row ", i);
  Shape rest(all.shape().begin() + 1, all.shape().end());
  int64_t n = 1;
  for (int64_t d : rest) n *= d;
  Tensor row(all.dtype(), {n});
  const size_t bytes = static_cast<size_t>(n) * dtype_size(all.dtype());
  std::memcpy(row.raw_data(), static_cast<const char*>(all.raw_data()) + static_cast<size_t>(i) * bytes, bytes);
  return row;
}

Result<InferRequest> sample_request(const ModelVersion& v, const Samples& s, int64_t i) {
  const inference::ModelConfig& config = v.config();
  InferRequest r;
  r.model_name = v.name();
  for (const auto& in : config.input()) {
    HEARTH_ASSIGN_OR_RETURN(DataType dtype, repository::dtype_from_config(in.data_type()));
    serving::InferInput input;
    input.name = in.name();
    input.datatype = serving::kserve_datatype(dtype);
    if (config.max_batch_size() > 0) input.shape.push_back(1);
    auto it = s.inputs.find(in.name());
    if (it != s.inputs.end()) {
      const Tensor& all = it->second;
      if (all.dtype() != dtype)
        return invalid_argument("golden input '", in.name(), "' is not ", input.datatype, " as the model takes");
      Shape rest(all.shape().begin() + 1, all.shape().end());
      // A model without batching whose own first dim is the batch: a row is [1, ...].
      if (config.max_batch_size() == 0 && static_cast<int>(rest.size()) + 1 == in.dims_size()) rest.insert(rest.begin(), 1);
      input.shape.insert(input.shape.end(), rest.begin(), rest.end());
      HEARTH_ASSIGN_OR_RETURN(input.data, row_of(all, i));
    } else {
      int64_t n = 1;
      for (int64_t d : in.dims()) {
        input.shape.push_back(d < 0 ? 1 : d);
        n *= d < 0 ? 1 : d;
      }
      input.data = Tensor(dtype, {n});
      std::memset(input.data.raw_data(), 0, input.data.nbytes());
    }
    r.inputs.push_back(std::move(input));
  }
  return r;
}

Result<Samples> load_golden(const fs::path& dir, const inference::ModelConfig& config) {
  Samples s;
  for (const auto& in : config.input()) {
    const fs::path p = dir / "inputs" / (in.name() + ".npy");
    std::error_code ec;
    if (!fs::exists(p, ec)) return not_found("the golden set has no inputs/", in.name(), ".npy");
    HEARTH_ASSIGN_OR_RETURN(Tensor t, read_npy(p.string()));
    if (t.rank() < 1) return invalid_argument("golden inputs/", in.name(), ".npy has no sample dimension");
    if (s.count == 0) s.count = t.dim(0);
    if (t.dim(0) != s.count) return invalid_argument("golden inputs disagree on the number of samples");
    s.inputs[in.name()] = std::move(t);
  }
  std::error_code ec;
  if (fs::exists(dir / "labels.npy", ec)) {
    HEARTH_ASSIGN_OR_RETURN(s.labels, read_npy((dir / "labels.npy").string()));
    if (s.labels.numel() != s.count) return invalid_argument("golden labels.npy has ", s.labels.numel(), " labels for ", s.count, " samples");
  } else {
    for (const auto& out : config.output()) {
      const fs::path p = dir / "expected" / (out.name() + ".npy");
      if (!fs::exists(p, ec)) continue;
      HEARTH_ASSIGN_OR_RETURN(Tensor t, read_npy(p.string()));
      if (t.rank() < 1 || t.dim(0) != s.count) return invalid_argument("golden expected/", out.name(), ".npy has the wrong number of samples");
      s.expected[out.name()] = std::move(t);
    }
    if (s.expected.empty()) return not_found("the golden set has neither labels.npy nor expected/<output>.npy");
  }
  if (s.count == 0) return invalid_argument("the golden set has no samples");
  s.count = std::min(s.count, kMaxGoldenSamples);
  return s;
}

// Top-1 of sample i: from the labels, or from the expected output.
Result<int64_t> expected_top1(const Samples& s, int64_t i, const std::string& output) {
  if (s.labels.defined()) {
    if (s.labels.dtype() == DataType::kInt64) return s.labels.data<int64_t>()[i];
    if (s.labels.dtype() == DataType::kInt32) return s.labels.data<int32_t>()[i];
    return invalid_argument("golden labels.npy must hold int64 or int32 class indices");
  }
  auto it = output.empty() ? s.expected.begin() : s.expected.find(output);
  if (it == s.expected.end()) return not_found("the golden set has no expected/", output, ".npy");
  InferResponse fake;
  HEARTH_ASSIGN_OR_RETURN(Tensor row, row_of(it->second, i));
  fake.outputs.push_back({it->first, "", row});
  HEARTH_ASSIGN_OR_RETURN(auto top, top1(fake, it->first));
  if (top.empty()) return invalid_argument("an expected output row is empty");
  return top.front();
}

// Correct answers of `v` on the golden samples.
Result<int64_t> golden_correct(ModelVersion& v, const Samples& s, const std::string& output) {
  int64_t correct = 0;
  for (int64_t i = 0; i < s.count; ++i) {
    HEARTH_ASSIGN_OR_RETURN(InferRequest r, sample_request(v, s, i));
    HEARTH_ASSIGN_OR_RETURN(InferResponse answer, run_on(v, std::move(r)));
    HEARTH_ASSIGN_OR_RETURN(auto top, top1(answer, output));
    HEARTH_ASSIGN_OR_RETURN(int64_t want, expected_top1(s, i, output));
    if (!top.empty() && top.front() == want) ++correct;
  }
  return correct;
}

int64_t available_memory_mb() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb / 1024;
  return -1;
}

GateCheck latency_check(ModelVersion& champion, ModelVersion& candidate, const GateSpec& g, const Samples& golden) {
  GateCheck c{"latency", true, false, ""};
  if (g.latency_ratio <= 0) {
    c.skipped = true;
    c.detail = "off";
    return c;
  }
  auto request = [&](ModelVersion& v) { return sample_request(v, golden, 0); };
  std::vector<double> times[2];
  ModelVersion* versions[2] = {&champion, &candidate};
  for (int run = 0; run <= g.latency_runs; ++run) {
    for (int k = 0; k < 2; ++k) {
      const int which = (run % 2 == 0) ? k : 1 - k;  // ABBA order
      auto r = request(*versions[which]);
      if (!r.ok()) return {"latency", false, false, r.status().message()};
      const auto start = std::chrono::steady_clock::now();
      auto answer = run_on(*versions[which], std::move(r).value());
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (!answer.ok())
        return {"latency", false, false, str_cat(which ? "the candidate" : "the champion", " failed: ", answer.status().message())};
      if (run > 0) times[which].push_back(ms);  // the first run of each warms up
    }
  }
  const double ch = quantile(times[0], 0.5), ca = quantile(times[1], 0.5);
  const double bound = std::max(ch * g.latency_ratio, ch + g.latency_slack_ms);
  c.passed = ca <= bound;
  c.detail = str_cat("median ", ca, " ms against the champion's ", ch, " ms (bound ", bound, " ms, ", g.latency_runs,
                     " runs each)");
  return c;
}

GateCheck accuracy_check(ModelVersion& champion, ModelVersion& candidate, const GateSpec& g, const Result<Samples>& golden,
                         bool have_golden) {
  GateCheck c{"accuracy", true, false, ""};
  if (!have_golden) {
    c.passed = !g.require_golden;
    c.skipped = !g.require_golden;
    c.detail = g.require_golden ? "no golden set, and the release requires one" : "no golden set: skipped";
    return c;
  }
  if (!golden.ok()) return {"accuracy", false, false, golden.status().message()};
  auto mine = golden_correct(candidate, *golden, g.output);
  if (!mine.ok()) return {"accuracy", false, false, str_cat("the candidate: ", mine.status().message())};
  auto theirs = golden_correct(champion, *golden, g.output);
  if (!theirs.ok()) return {"accuracy", false, false, str_cat("the champion: ", theirs.status().message())};
  const double n = static_cast<double>(golden->count);
  const double acc = static_cast<double>(*mine) / n, base = static_cast<double>(*theirs) / n;
  c.passed = acc >= g.min_accuracy && acc >= base - g.max_accuracy_drop;
  c.detail = str_cat("top-1 accuracy ", acc, " on ", golden->count, " golden samples against the champion's ", base,
                     " (at least ", std::max(g.min_accuracy, base - g.max_accuracy_drop), " needed)");
  return c;
}

}  // namespace

std::string GateReport::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const GateCheck& c : checks)
    list.push_back({{"name", c.name}, {"passed", c.passed}, {"skipped", c.skipped}, {"detail", c.detail}});
  return nlohmann::json{{"passed", passed}, {"checks", list}, {"reason", reason}}.dump();
}

std::string signature_mismatch(const inference::ModelConfig& champion, const inference::ModelConfig& candidate) {
  if ((champion.max_batch_size() > 0) != (candidate.max_batch_size() > 0))
    return str_cat("max_batch_size ", candidate.max_batch_size(), " in the candidate, ", champion.max_batch_size(),
                   " in the champion: one batches, the other does not");
  if (candidate.max_batch_size() < champion.max_batch_size())
    return str_cat("max_batch_size ", candidate.max_batch_size(), " in the candidate is under the champion's ",
                   champion.max_batch_size());
  std::string m = tensors_mismatch(champion.input(), candidate.input(), "input");
  return m.empty() ? tensors_mismatch(champion.output(), candidate.output(), "output") : m;
}

GateReport run_gate(const serving::InferenceServer& server, const std::string& repository, const ReleaseSpec& spec,
                    int64_t champion_version, int64_t candidate_version) {
  GateReport report;
  auto add = [&](GateCheck c) {
    if (!c.passed) report.reason += str_cat(report.reason.empty() ? "" : "; ", c.name, ": ", c.detail);
    report.passed = report.passed && c.passed;
    report.checks.push_back(std::move(c));
  };
  auto candidate = server.find_version(spec.model, std::to_string(candidate_version));
  auto champion = server.find_version(spec.model, std::to_string(champion_version));
  if (!candidate.ok() || !champion.ok()) {
    add({"ready", false, false,
         candidate.ok() ? str_cat("the champion: ", champion.status().message()) : candidate.status().message()});
    return report;
  }
  add({"ready", true, false, str_cat("version ", candidate_version, " loaded and warmed up")});
  const std::string mismatch = signature_mismatch((*champion)->config(), (*candidate)->config());
  add({"signature", mismatch.empty(), false, mismatch.empty() ? "compatible with the champion" : mismatch});
  if (!report.passed) return report;
  const GateSpec& g = spec.gate;
  const int64_t free_mb = available_memory_mb();
  if (g.min_free_memory_mb > 0 && free_mb >= 0)
    add({"memory", free_mb >= g.min_free_memory_mb, false,
         str_cat(free_mb, " MiB available with the candidate loaded (", g.min_free_memory_mb, " needed)")});
  const fs::path golden_dir = fs::path(repository) / spec.model / std::to_string(candidate_version) / g.golden;
  std::error_code ec;
  const bool have_golden = fs::is_directory(golden_dir, ec) &&
                           path_is_inside(fs::path(repository), fs::canonical(golden_dir, ec));
  Result<Samples> golden = have_golden ? load_golden(golden_dir, (*candidate)->config()) : Result<Samples>(Samples{});
  add(latency_check(**champion, **candidate, g, golden.ok() ? *golden : Samples{}));
  add(accuracy_check(**champion, **candidate, g, golden, have_golden));
  return report;
}

}  // namespace hearth::rollout
