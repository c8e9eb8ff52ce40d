// `hearth cpu`: what the probe found (core/machine.h) and what the engine does
// with it here: the ISA level its kernels use (after HEARTH_MAX_ISA), oneDNN's,
// and the default thread count.
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/machine.h"
#include "kernels/cpu_paths.h"
#include "runtime/session.h"

namespace hearth::cli {

namespace {

void print_cpu(bool json) {
  const CpuInfo& c = cpu_info();
  const std::string dnnl_isa = onednn_isa_name();
  if (json) {
    nlohmann::json j = {{"vendor", c.vendor},
                        {"brand", c.brand},
                        {"family", c.family},
                        {"model", c.model},
                        {"stepping", c.stepping},
                        {"logical_cores", c.logical_cores},
                        {"physical_cores", c.physical_cores},
                        {"l1d_bytes", c.l1d_bytes},
                        {"l2_bytes", c.l2_bytes},
                        {"l3_bytes", c.l3_bytes},
                        {"hardware_isa", isa_name(c.hardware_isa)},
                        {"isa", isa_name(isa_level())},
                        {"onednn_isa", dnnl_isa},
                        {"default_threads", default_intra_op_threads()}};
    nlohmann::json ext = nlohmann::json::object();
    const std::pair<const char*, bool> flags[] = {
        {"avx", c.avx},           {"avx2", c.avx2},           {"fma", c.fma},
        {"f16c", c.f16c},         {"avx512f", c.avx512f},     {"avx512bw", c.avx512bw},
        {"avx512dq", c.avx512dq}, {"avx512vl", c.avx512vl},   {"avx512_vnni", c.avx512_vnni},
        {"avx512_bf16", c.avx512_bf16}, {"avx_vnni", c.avx_vnni}, {"amx_tile", c.amx_tile},
        {"amx_int8", c.amx_int8}, {"amx_bf16", c.amx_bf16}};
    for (const auto& [name, has] : flags) ext[name] = has;
    j["extensions"] = ext;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "cpu:       " << c.summary() << "\n"
            << "kernels:   " << isa_name(isa_level())
            << (isa_level() != c.hardware_isa ? " (capped by HEARTH_MAX_ISA)" : "") << "\n"
            << "oneDNN:    " << dnnl_isa << "\n"
            << "threads:   " << default_intra_op_threads() << " intra-op by default (one per physical core)\n";
}

}  // namespace

void add_cpu_command(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("cpu", "Show the CPU probe: ISA levels, caches, cores, and the paths in use");
  cmd->add_flag("--json", *json, "print JSON");
  cmd->callback([json] { print_cpu(*json); });
}

}  // namespace hearth::cli
