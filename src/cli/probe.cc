// `hearth probe-model`: confines itself (security/sandbox.h), then loads a model and
// runs it once on zeros. `hearth serve` runs it as the child of a trial load
// (serving/trial_load.h); run by hand, it checks an untrusted model the same way.
// Exit 0 when the model loaded (and ran, or failed a run with an error: that is an
// answer too); 1 with the reason when it did not load; a crash shows as the signal
// that ended the process.
#include <unistd.h>

#include <chrono>
#include <iostream>

#include "cli/commands.h"
#include "graph/external_data.h"
#include "runtime/session.h"
#include "security/sandbox.h"
#include "serving/trial_load.h"

namespace hearth::cli {
namespace {

struct ProbeOptions {
  std::string model;
  int model_fd = -1;
  std::string external_dir;
  LimitFlags limits;
  size_t address_space_mb = 0;
  int cpu_seconds = 0;
};

Result<std::string> read_fd(int fd) {
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return internal_error("cannot read the model from fd ", fd);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Zeros for every input; dynamic dims are 1.
std::vector<std::pair<std::string, Tensor>> zero_inputs(const Session& s) {
  std::vector<std::pair<std::string, Tensor>> feeds;
  for (const auto& in : s.inputs()) {
    Shape shape;
    for (int64_t d : in.dims) shape.push_back(d < 0 ? 1 : d);
    const DataType t = in.dtype == DataType::kUndefined ? DataType::kFloat : in.dtype;
    feeds.emplace_back(in.name, Tensor::zeros(t, shape));
  }
  return feeds;
}

Status probe(const ProbeOptions& o) {
  if (o.model.empty() == (o.model_fd < 0)) return invalid_argument("give either --model or --model-fd");
  // Confine first: nothing of the model is read before this.
  security::SandboxLimits limits;
  limits.address_space_bytes = o.address_space_mb << 20;
  limits.cpu_seconds = o.cpu_seconds;
  HEARTH_RETURN_IF_ERROR(security::enter_sandbox(limits).status());

  SessionOptions so;
  so.intra_op_threads = 1;
  so.max_tensor_bytes = o.limits.max_tensor_bytes;
  so.max_memory_bytes = o.limits.max_memory_bytes;
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Session> session;
  if (o.model_fd >= 0) {
    HEARTH_ASSIGN_OR_RETURN(std::string bytes, read_fd(o.model_fd));
    HEARTH_ASSIGN_OR_RETURN(serving::TrialFrame frame, serving::read_trial_frame(bytes));
    std::map<std::string, std::string_view> files;
    for (const auto& [name, data] : frame.external) files.emplace(name, data);
    HEARTH_ASSIGN_OR_RETURN(session, Session::load_bytes(frame.model.data(), frame.model.size(),
                                                         ExternalData{o.external_dir, files.empty() ? nullptr : &files},
                                                         so));
  } else {
    HEARTH_ASSIGN_OR_RETURN(session, Session::load_file(o.model, so));
  }
  // A run that fails is an answer, as the server's own warm-up treats it (zeros are not
  // every model's data); only a load error, a crash or a limit fails the probe.
  const auto t1 = std::chrono::steady_clock::now();
  const Status ran = session->run(zero_inputs(*session)).status();
  const auto t2 = std::chrono::steady_clock::now();
  std::cout << "ok: loaded in " << std::chrono::duration<double, std::milli>(t1 - t0).count() << " ms, "
            << (ran.ok() ? "ran" : "failed a run") << " on zeros in "
            << std::chrono::duration<double, std::milli>(t2 - t1).count() << " ms"
            << (ran.ok() ? "" : ": " + ran.message()) << "\n";
  return ok_status();
}

}  // namespace

void add_probe_command(CLI::App& app) {
  auto o = std::make_shared<ProbeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "probe-model", "Load a model and run it once on zeros inside a confined process (what serve's trial loads run)");
  cmd->add_option("--model", o->model, "ONNX model file");
  cmd->add_option("--model-fd", o->model_fd, "read the model (trial frame) from this file descriptor");
  cmd->add_option("--external-dir", o->external_dir, "with --model-fd: folder of the model's external data");
  add_limit_flags(cmd, o->limits);
  cmd->add_option("--address-space-mb", o->address_space_mb, "address-space limit of this process (0 = none)");
  cmd->add_option("--cpu-seconds", o->cpu_seconds, "CPU-time limit of this process (0 = none)");
  cmd->callback([o] { run_reporting(o, probe); });
}

}  // namespace hearth::cli
