// `hearth run`: runs a model once on .npy inputs and writes each output as .npy.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/inputs.h"
#include "core/npy.h"
#include "runtime/session.h"

namespace hearth::cli {
namespace fs = std::filesystem;

namespace {

struct RunOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::string output_dir = ".";
  int threads = 0;
  LimitFlags limits;
};

// Output names may hold characters that are not safe in file names.
std::string file_name_for(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '_';
  if (s.empty() || s[0] == '.') s = "_" + s;
  return s;
}

Status run_model(const RunOptions& o) {
  SessionOptions so;
  so.intra_op_threads = o.threads;
  so.max_tensor_bytes = o.limits.max_tensor_bytes;
  so.max_memory_bytes = o.limits.max_memory_bytes;
  HEARTH_ASSIGN_OR_RETURN(auto session, Session::load_file(o.model, so));
  HEARTH_ASSIGN_OR_RETURN(Feeds feeds, load_input_args(o.inputs, session->inputs()));
  HEARTH_ASSIGN_OR_RETURN(auto outputs, session->run(feeds));
  std::error_code ec;
  fs::create_directories(o.output_dir, ec);
  if (ec) return not_found("cannot create output folder '", o.output_dir, "': ", ec.message());
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::string path = (fs::path(o.output_dir) / (file_name_for(session->outputs()[i].name) + ".npy")).string();
    HEARTH_RETURN_IF_ERROR(write_npy(path, outputs[i]));
    std::cout << session->outputs()[i].name << ": " << outputs[i].describe() << " -> " << path << "\n";
  }
  return ok_status();
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Run a model on .npy inputs; write outputs as DIR/NAME.npy");
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("-i,--input", o->inputs, "NAME=FILE.npy (repeat per input; FILE.npy alone for one-input models)");
  cmd->add_option("-o,--output-dir", o->output_dir, "folder for output .npy files")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "intra-op threads (0 = all cores)");
  add_limit_flags(cmd, o->limits);
  cmd->callback([o] {
    Status s = run_model(*o);
    if (!s.ok()) report_error(s);
  });
}

}  // namespace hearth::cli
