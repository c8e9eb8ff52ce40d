#include "cli/commands.h"
namespace hearth::cli {
void add_run_command(CLI::App&) {}
void add_inspect_command(CLI::App&) {}
void add_bench_command(CLI::App&) {}
}
