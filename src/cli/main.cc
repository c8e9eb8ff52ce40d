// hearth: command-line entry point. Each subcommand lives in its own file.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Hearth: on-premises ONNX inference engine and server"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hearth 0.1.0");
  hearth::cli::add_conformance_command(app);
  hearth::cli::add_run_command(app);
  hearth::cli::add_inspect_command(app);
  hearth::cli::add_bench_command(app);
  hearth::cli::add_ops_command(app);
  hearth::cli::add_serve_command(app);
  hearth::cli::add_security_commands(app);
  hearth::cli::add_auth_commands(app);
  hearth::cli::add_audit_command(app);
  hearth::cli::add_certs_command(app);
  hearth::cli::add_sign_command(app);
  hearth::cli::add_probe_command(app);
  hearth::cli::add_release_command(app);
  hearth::cli::add_cpu_command(app);
  hearth::cli::add_tune_command(app);
  hearth::cli::add_optimize_command(app);
  hearth::cli::add_doctor_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : hearth::cli::kExitUsage;
  }
  return hearth::cli::exit_code();
}
