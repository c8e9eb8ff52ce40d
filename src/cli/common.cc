#include <iostream>

#include "cli/commands.h"

namespace hearth::cli {

namespace {
int g_exit_code = kExitOk;
}

int exit_code() { return g_exit_code; }
void set_exit_code(int code) { g_exit_code = code; }

void report_error(const Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  g_exit_code = kExitRuntime;  // usage errors are CLI11's, mapped to kExitUsage in main()
}

}  // namespace hearth::cli
