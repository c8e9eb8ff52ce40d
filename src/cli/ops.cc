// `hearth ops`: the supported operators, straight from the kernel registry.
#include <iostream>
#include <map>
#include <set>

#include "cli/commands.h"
#include "kernels/kernel.h"

namespace hearth::cli {

namespace {

std::string opset_range(int since, int until) {
  if (until >= kMaxOpset) return std::to_string(since) + "+";
  if (since == until) return std::to_string(since);
  return std::to_string(since) + "-" + std::to_string(until);
}

void print_ops(bool markdown) {
  // op (domain-qualified) -> opset ranges and dtypes
  std::map<std::string, std::pair<std::vector<std::string>, std::set<std::string>>> ops;
  for (const auto& d : KernelRegistry::global().defs()) {
    std::string key = d.domain.empty() ? d.op_type : d.domain + "." + d.op_type;
    ops[key].first.push_back(opset_range(d.since_version, d.until_version));
    for (DataType t : d.dtypes) ops[key].second.insert(dtype_name(t));
  }
  if (markdown) {
    std::cout << "| op | opsets | element types |\n| --- | --- | --- |\n";
  }
  for (const auto& [op, info] : ops) {
    std::string ranges, types;
    for (const auto& r : info.first) ranges += (ranges.empty() ? "" : ", ") + r;
    for (const auto& t : info.second) types += (types.empty() ? "" : ", ") + t;
    if (markdown) std::cout << "| " << op << " | " << ranges << " | " << types << " |\n";
    else std::cout << op << "  opsets " << ranges << "  types " << types << "\n";
  }
  if (!markdown) std::cout << ops.size() << " operators\n";
}

}  // namespace

void add_ops_command(CLI::App& app) {
  auto markdown = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("ops", "List the supported operators with opset ranges and element types");
  cmd->add_flag("--markdown", *markdown, "print a Markdown table");
  cmd->callback([markdown] { print_ops(*markdown); });
}

}  // namespace hearth::cli
