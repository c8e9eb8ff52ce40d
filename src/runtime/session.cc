#include "runtime/session.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/machine.h"
#include "graph/onnx_import.h"
#include "graph/optimizer.h"
#include "kernels/kernel.h"
#include "runtime/control_flow.h"
#include "runtime/pool_allocator.h"

namespace hearth {

namespace {

// Ops whose result must not be frozen at load even when every input is constant.
bool is_nondeterministic(const Node& n) {
  static const std::set<std::string> kOps = {"RandomNormal", "RandomUniform", "RandomNormalLike",
                                             "RandomUniformLike", "Multinomial", "Bernoulli"};
  return n.domain.empty() && kOps.count(n.op_type);
}

Status unsupported_op_error(const Node& node, int64_t opset) {
  const std::string dom = node.domain.empty() ? "ai.onnx" : node.domain;
  if (KernelRegistry::global().knows_op(node.op_type, node.domain)) {
    return unimplemented("op ", node.op_type, " (domain ", dom, ") is not supported at opset ", opset,
                         ", used by node '", node.name, "'");
  }
  return unimplemented("unsupported op ", node.op_type, " (domain ", dom, ", opset ", opset, ") used by node '",
                       node.name, "'");
}

// Kernels report errors as Status; a shape over a size limit (SizeError), an allocation
// failure (a model or input asking for absurd sizes) or a library exception must not
// take the process down either. `doing` names the work for the messages.
template <typename Fn>
Status guarded(const char* doing, Fn&& fn) {
  try {
    return fn();
  } catch (const SizeError& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return resource_exhausted("out of memory while ", doing, " (are the model's and the input's sizes reasonable?)");
  } catch (const std::exception& e) {
    return internal_error("unexpected exception while ", doing, ": ", e.what());
  }
}

// Every tensor the kernel makes, temporaries included, is held to the tensor limit.
Status compute_guarded(Kernel& kernel, KernelContext& ctx) {
  TensorLimitScope limit(ctx.max_tensor_bytes());
  return guarded("computing", [&] { return kernel.compute(ctx); });
}

// Whether `node` reads only initializers a caller cannot override (and is
// deterministic and no control flow), so that it may run once, ahead of time.
bool reads_only_constants(const Node& node, const Graph& g, const std::set<std::string>& overridable) {
  if (is_nondeterministic(node) || is_control_flow_op(node) || node.outputs.empty()) return false;
  for (const auto& in : node.inputs)
    if (!in.empty() && (overridable.count(in) || !g.initializers.count(in))) return false;
  return true;
}

// Runs `kernel` once on the node's constant inputs; when it succeeds and gives
// every named output, those become initializers. A failure leaves the node to
// run time, where the same error surfaces with its context.
bool fold_into_initializers(const Node& node, Kernel& kernel, Graph& g, int threads, size_t max_tensor_bytes) {
  std::vector<const Tensor*> ins;
  for (const auto& in : node.inputs) ins.push_back(in.empty() ? nullptr : &g.initializers.at(in));
  std::vector<Tensor> outs(node.outputs.size());
  KernelContext ctx(node, ins, &outs, default_allocator(), threads, 0, max_tensor_bytes);
  if (!compute_guarded(kernel, ctx).ok()) return false;
  for (size_t k = 0; k < outs.size(); ++k)
    if (!node.outputs[k].empty() && !outs[k].defined()) return false;
  for (size_t k = 0; k < outs.size(); ++k)
    if (!node.outputs[k].empty()) g.initializers[node.outputs[k]] = std::move(outs[k]);
  return true;
}

}  // namespace

int default_intra_op_threads() { return std::max(1, cpu_info().physical_cores); }

Session::~Session() {
  // Tensors the caller still holds keep the pool; the memory of the rest goes back now.
  if (pool_) pool_->orphan();
}

Result<std::unique_ptr<Session>> Session::load_file(const std::string& path, const SessionOptions& options) {
  HEARTH_ASSIGN_OR_RETURN(Model m, load_model_file(path));
  auto s = create(std::move(m), options);
  if (!s.ok()) return s.status().with_context(path);
  return s;
}

Result<std::unique_ptr<Session>> Session::load_bytes(const void* data, size_t size, const std::string& base_dir,
                                                     const SessionOptions& options) {
  return load_bytes(data, size, ExternalData{base_dir, nullptr}, options);
}

Result<std::unique_ptr<Session>> Session::load_bytes(const void* data, size_t size, const ExternalData& external,
                                                     const SessionOptions& options) {
  HEARTH_ASSIGN_OR_RETURN(Model m, load_model_bytes(data, size, external));
  return create(std::move(m), options);
}

Result<std::unique_ptr<Session>> Session::create(Model model, const SessionOptions& options) {
  std::unique_ptr<Session> s(new Session());
  s->model_ = std::move(model);
  s->options_ = options;
  s->threads_ = options.intra_op_threads > 0 ? options.intra_op_threads : default_intra_op_threads();
  s->max_tensor_bytes_ = options.max_tensor_bytes ? options.max_tensor_bytes : physical_memory_bytes() / 2;
  std::shared_ptr<TuningCache> cache;
  if (options.tuning != TuningMode::kHeuristic) cache = options.tuning_cache ? options.tuning_cache : TuningCache::shared();
  s->tuner_ = std::make_unique<PathTuner>(options.tuning, std::move(cache), options.tune_budget_ms);
  s->pool_ = PoolAllocator::create();
  s->pool_->set_live_limit(options.max_memory_bytes);
  // The model is untrusted: a rewrite or a kernel's set-up that throws (an allocation
  // sized by the model, a size check) fails this load, never the process.
  Status st = guarded("loading the model", [&] {
    if (options.optimize) {
      fuse_qdq_convolutions(s->model_);
      if (options.fold_constants) HEARTH_RETURN_IF_ERROR(s->fold_before_optimizer());
      HEARTH_RETURN_IF_ERROR(optimize_graph(s->model_, options.blocked_layout).status());
    }
    return s->prepare();
  });
  if (!st.ok()) return st;
  return s;
}

// Binds kernels, optionally folds constants, then assigns slots and lifetimes.
Status Session::prepare() {
  Graph& g = model_.graph;
  for (const auto& in : g.inputs) {
    if (!in.name.empty() && in.dtype != DataType::kUndefined && !dtype_is_supported(in.dtype)) {
      return unimplemented("model input '", in.name, "' has unsupported type ", dtype_name(in.dtype));
    }
  }
  for (const auto& [name, t] : g.initializers) HEARTH_RETURN_IF_ERROR(check_tensor_limit("initializer", name, t));
  std::unordered_map<std::string, int> slot;
  auto slot_of = [&](const std::string& name) {
    auto [it, inserted] = slot.emplace(name, static_cast<int>(slot.size()));
    return it->second;
  };
  std::set<std::string> overridable;
  for (const auto& v : g.overridable_initializers) overridable.insert(v.name);

  steps_.clear();
  steps_.reserve(g.nodes.size());
  for (const Node& node : g.nodes) {
    const int64_t opset = model_.opset(node.domain);
    if (is_control_flow_op(node)) {
      HEARTH_ASSIGN_OR_RETURN(auto kernel, make_control_flow_kernel(node, model_.opsets, opset, options_));
      Step step;
      step.node = &node;
      step.kernel = std::move(kernel);
      step.implicit_inputs = control_flow_implicit_inputs(node);
      step.profile.name = node.name;
      step.profile.op_type = node.op_type;
      steps_.push_back(std::move(step));
      continue;
    }
    const KernelDef* def = KernelRegistry::global().find(node.op_type, node.domain, opset);
    if (!def) return unsupported_op_error(node, opset);
    KernelInfo info{node, opset, [&](size_t i) -> const Tensor* {
                      if (i >= node.inputs.size() || node.inputs[i].empty()) return nullptr;
                      if (overridable.count(node.inputs[i])) return nullptr;
                      auto it = g.initializers.find(node.inputs[i]);
                      return it == g.initializers.end() ? nullptr : &it->second;
                    },
                    tuner_.get()};
    auto kernel = def->factory(info);
    if (!kernel.ok()) return kernel.status();
    Step step;
    step.node = &node;
    step.kernel = std::move(kernel).value();
    step.profile.name = node.name;
    step.profile.op_type = node.op_type;
    steps_.push_back(std::move(step));
  }
  if (options_.fold_constants) HEARTH_RETURN_IF_ERROR(fold_constants());

  // Slots: inputs, initializers, then every node output.
  input_slots_.clear();
  for (const auto& in : g.inputs) input_slots_.push_back(slot_of(in.name));
  for (const auto& [name, t] : g.initializers) slot_of(name);
  override_slots_.clear();
  for (const auto& v : g.overridable_initializers) override_slots_.push_back(slot_of(v.name));
  for (auto& step : steps_) {
    step.inputs.clear();
    step.outputs.clear();
    for (const auto& in : step.node->inputs) step.inputs.push_back(in.empty() ? -1 : slot_of(in));
    for (const auto& in : step.implicit_inputs) step.inputs.push_back(slot_of(in));
    for (const auto& out : step.node->outputs) step.outputs.push_back(out.empty() ? -1 : slot_of(out));
  }
  output_slots_.clear();
  for (const auto& out : g.outputs) output_slots_.push_back(slot_of(out.name));
  num_slots_ = slot.size();
  constants_.assign(num_slots_, Tensor());
  for (const auto& [name, t] : g.initializers) constants_[slot.at(name)] = t;

  // Lifetimes: release each intermediate after its last reader, unless it is an output.
  std::set<int> keep(output_slots_.begin(), output_slots_.end());
  std::vector<int> last_reader(num_slots_, -1);
  for (size_t i = 0; i < steps_.size(); ++i)
    for (int s : steps_[i].inputs)
      if (s >= 0) last_reader[s] = static_cast<int>(i);
  for (size_t i = 0; i < steps_.size(); ++i) {
    steps_[i].release.clear();
    for (int s : steps_[i].outputs)  // outputs nobody reads die at once
      if (s >= 0 && last_reader[s] < 0 && !keep.count(s)) steps_[i].release.push_back(s);
  }
  for (size_t s = 0; s < num_slots_; ++s) {
    if (last_reader[s] >= 0 && !keep.count(static_cast<int>(s)) && !constants_[s].defined()) {
      steps_[last_reader[s]].release.push_back(static_cast<int>(s));
    }
  }
  // An input the step releases, that the step reads once, and that the caller did not
  // feed may lend its memory to an output (the run also checks nobody shares it).
  std::set<int> fed(input_slots_.begin(), input_slots_.end());
  fed.insert(override_slots_.begin(), override_slots_.end());
  for (auto& step : steps_) {
    step.donatable = 0;
    for (size_t k = 0; k < step.inputs.size() && k < 64; ++k) {
      const int s = step.inputs[k];
      if (s < 0 || fed.count(s) || std::count(step.inputs.begin(), step.inputs.end(), s) != 1) continue;
      if (std::find(step.release.begin(), step.release.end(), s) != step.release.end()) step.donatable |= uint64_t{1} << k;
    }
  }
  return ok_status();
}

// Nodes whose inputs are all initializers, computed before the optimizer runs so
// that its passes (and the kernels' constant-weight paths) see what they produce
// as the initializers they are: the DequantizeLinear of a QDQ model's int8
// weights, a Transpose or Cast of a weight. A node that fails here is left to
// run time, where the same error surfaces with its context.
Status Session::fold_before_optimizer() {
  Graph& g = model_.graph;
  std::set<std::string> overridable;
  for (const auto& v : g.overridable_initializers) overridable.insert(v.name);
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (Node& node : g.nodes) {
    const int64_t opset = model_.opset(node.domain);
    const KernelDef* def = reads_only_constants(node, g, overridable)
                               ? KernelRegistry::global().find(node.op_type, node.domain, opset)
                               : nullptr;
    if (def) {
      KernelInfo info{node, opset,
                      [&](size_t i) -> const Tensor* {
                        if (i >= node.inputs.size() || node.inputs[i].empty()) return nullptr;
                        return &g.initializers.at(node.inputs[i]);
                      },
                      nullptr};
      auto kernel = def->factory(info);
      if (kernel.ok() && fold_into_initializers(node, **kernel, g, threads_, max_tensor_bytes_)) continue;
    }
    kept.push_back(std::move(node));
  }
  g.nodes = std::move(kept);
  return ok_status();
}

// Runs every step whose inputs are all constants once, turning its outputs into initializers.
Status Session::fold_constants() {
  Graph& g = model_.graph;
  std::set<std::string> overridable;
  for (const auto& v : g.overridable_initializers) overridable.insert(v.name);
  std::vector<Step> kept;
  std::vector<Node> kept_nodes;
  std::vector<size_t> kept_index;
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& step = steps_[i];
    const Node& node = *step.node;
    if (step.implicit_inputs.empty() && reads_only_constants(node, g, overridable) &&
        fold_into_initializers(node, *step.kernel, g, threads_, max_tensor_bytes_))
      continue;
    kept_index.push_back(i);
  }
  if (kept_index.size() == steps_.size()) return ok_status();
  // Rebuild node storage so Step::node pointers stay valid.
  for (size_t i : kept_index) kept_nodes.push_back(*steps_[i].node);
  g.nodes = std::move(kept_nodes);
  for (size_t k = 0; k < kept_index.size(); ++k) {
    Step s = std::move(steps_[kept_index[k]]);
    s.node = &g.nodes[k];
    kept.push_back(std::move(s));
  }
  steps_ = std::move(kept);
  return ok_status();
}

// A tensor the kernels will see, from the model or the caller: within the per-tensor
// limit, counting an empty tensor's zero dims as ones (core/checked_math.h).
Status Session::check_tensor_limit(const char* what, const std::string& name, const Tensor& t) const {
  auto bytes = checked_extent_bytes(t.dtype(), t.shape());
  if (!bytes.ok()) return bytes.status().with_context(str_cat(what, " '", name, "'"));
  if (*bytes > max_tensor_bytes_) {
    return resource_exhausted(what, " '", name, "' ", t.describe(), " is ", *bytes, " bytes",
                              t.numel() == 0 ? " counting its zero dims as ones" : "", ", over the limit of ",
                              max_tensor_bytes_, " bytes for one tensor (max_tensor_bytes)");
  }
  return ok_status();
}

Status Session::validate_feed(const ValueInfo& info, const Tensor& t) const {
  if (!t.defined()) return invalid_argument("input '", info.name, "' is empty");
  HEARTH_RETURN_IF_ERROR(check_tensor_limit("input", info.name, t));
  if (info.dtype != DataType::kUndefined && t.dtype() != info.dtype) {
    return invalid_argument("input '", info.name, "' must be ", dtype_name(info.dtype), ", got ", dtype_name(t.dtype()));
  }
  if (info.has_shape) {
    if (t.rank() != info.dims.size()) {
      return invalid_argument("input '", info.name, "' must have rank ", info.dims.size(), " (", info.describe(),
                              "), got ", t.describe());
    }
    for (size_t i = 0; i < info.dims.size(); ++i) {
      if (info.dims[i] >= 0 && t.dim(i) != info.dims[i]) {
        return invalid_argument("input '", info.name, "' dimension ", i, " must be ", info.dims[i], " (",
                                info.describe(), "), got ", t.describe());
      }
    }
  }
  return ok_status();
}

Result<std::vector<Tensor>> Session::run(const std::vector<std::pair<std::string, Tensor>>& feeds) {
  std::lock_guard<std::mutex> lock(run_mutex_);
  // Loop/Scan iterations of this run, nested sessions included.
  IterationBudgetScope budget(options_.max_loop_iterations > 0 ? options_.max_loop_iterations : kDefaultLoopIterations);
  const Graph& g = model_.graph;
  std::vector<Tensor> values(constants_);
  std::vector<bool> fed(g.inputs.size(), false);
  for (const auto& [name, t] : feeds) {
    bool matched = false;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      if (g.inputs[i].name == name) {
        HEARTH_RETURN_IF_ERROR(validate_feed(g.inputs[i], t));
        values[input_slots_[i]] = t;
        fed[i] = matched = true;
        break;
      }
    }
    for (size_t i = 0; !matched && i < g.overridable_initializers.size(); ++i) {
      if (g.overridable_initializers[i].name == name) {
        HEARTH_RETURN_IF_ERROR(validate_feed(g.overridable_initializers[i], t));
        values[override_slots_[i]] = t;
        matched = true;
      }
    }
    if (!matched) return invalid_argument("model has no input named '", name, "'");
  }
  for (size_t i = 0; i < g.inputs.size(); ++i)
    if (!fed[i]) return invalid_argument("input '", g.inputs[i].name, "' was not given");

  omp_set_num_threads(threads_);
  std::vector<const Tensor*> ins;
  for (auto& step : steps_) {
    ins.clear();
    for (int s : step.inputs) ins.push_back(s >= 0 && values[s].defined() ? &values[s] : nullptr);
    std::vector<Tensor> outs(step.outputs.size());
    KernelContext ctx(*step.node, ins, &outs, pool_.get(), threads_, step.donatable, max_tensor_bytes_);
    auto t0 = options_.profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    Status st = compute_guarded(*step.kernel, ctx);
    if (!st.ok()) return with_node_context(st, *step.node);
    if (options_.profile) {
      step.profile.total_us +=
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      step.profile.runs++;
    }
    for (size_t k = 0; k < outs.size(); ++k) {
      if (step.outputs[k] < 0) continue;
      if (!outs[k].defined()) {
        return internal_error(step.node->describe(), " did not produce output ", k, " ('", step.node->outputs[k], "')");
      }
      values[step.outputs[k]] = std::move(outs[k]);
    }
    for (int s : step.release) values[s] = Tensor();
  }
  std::vector<Tensor> result;
  result.reserve(output_slots_.size());
  for (size_t i = 0; i < output_slots_.size(); ++i) {
    const Tensor& t = values[output_slots_[i]];
    if (!t.defined()) return internal_error("output '", g.outputs[i].name, "' was not computed");
    result.push_back(t);
  }
  return result;
}

std::vector<NodeProfile> Session::node_profile() const {
  std::vector<NodeProfile> out;
  for (const auto& s : steps_) out.push_back(s.profile);
  return out;
}

std::vector<PathChoice> Session::plan_report() const { return tuner_ ? tuner_->report() : std::vector<PathChoice>{}; }

size_t Session::pool_bytes() const { return pool_->held_bytes(); }

}  // namespace hearth
