// Shared oneDNN plumbing: the process-wide CPU engine and error conversion.
#include "kernels/dnnl_common.h"

#include <cstdlib>

#include "core/machine.h"
#include "kernels/cpu_paths.h"

namespace hearth {

namespace {

// HEARTH_MAX_ISA caps oneDNN as it caps the engine's own kernels, so that one
// variable makes an AVX-512 machine behave as an AVX2 one end to end. An
// explicit ONEDNN_MAX_CPU_ISA wins; oneDNN takes the cap only before its first
// primitive, which is why this runs when the engine is made.
void cap_dnnl_isa() {
  if (const char* own = std::getenv("ONEDNN_MAX_CPU_ISA"); own && *own) return;
  if (const char* own = std::getenv("DNNL_MAX_CPU_ISA"); own && *own) return;
  IsaLevel cap;
  if (!isa_cap_from_environment(&cap) || cap == IsaLevel::kAvx512) return;
  try {
    dnnl::set_max_cpu_isa(cap == IsaLevel::kAvx2 ? dnnl::cpu_isa::avx2 : dnnl::cpu_isa::sse41);
  } catch (const dnnl::error&) {
    // Too late (a primitive exists already): oneDNN keeps its own choice.
  }
}

}  // namespace

dnnl::engine& dnnl_cpu_engine() {
  static dnnl::engine engine = [] {
    cap_dnnl_isa();
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return engine;
}

std::string onednn_isa_name() {
  dnnl_cpu_engine();  // the cap, if any, first
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
  }
}

Status dnnl_error_status(const dnnl::error& e, const std::string& what) {
  return internal_error(what, ": oneDNN error ", static_cast<int>(e.status), ": ", e.what());
}

}  // namespace hearth
