// What this machine offers, read once from the system: physical memory and the
// CPU (vendor, family/model, ISA extensions, caches, cores).
//
// Every hand-written kernel dispatches on `isa_level()`: the highest level the
// CPU and the operating system both support (CPUID and XGETBV), capped by
// `HEARTH_MAX_ISA=scalar|avx2|avx512` so that each path can be run and tested on
// a machine that has the higher ones (as ONEDNN_MAX_CPU_ISA does for oneDNN; the
// cap is passed on to oneDNN too, see kernels/dnnl_common.cc).
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace hearth {

// Bytes of physical memory (sysconf); 4 GiB when the system does not say.
size_t physical_memory_bytes();

// The levels the engine's own kernels are written for, in increasing order.
//   kScalar: the baseline x86-64 build (SSE2), any CPU
//   kAvx2:   AVX2 + FMA (Haswell, Zen 1 and later)
//   kAvx512: AVX-512 F + BW + DQ + VL (Skylake-SP, Ice Lake, Zen 4 and later)
enum class IsaLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const char* isa_name(IsaLevel level);  // "scalar", "avx2", "avx512"
Result<IsaLevel> parse_isa_level(const std::string& text);

struct CpuInfo {
  std::string vendor;  // "AuthenticAMD", "GenuineIntel", ...
  std::string brand;   // the processor brand string, trimmed
  int family = 0, model = 0, stepping = 0;  // display family / model (extended fields folded in)
  // Extensions usable here: the CPU has them and the OS saves their registers.
  bool avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx_vnni = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  size_t l1d_bytes = 0, l2_bytes = 0, l3_bytes = 0;  // per core (L1, L2) and per package (L3); 0 when unknown
  int logical_cores = 1;   // online logical CPUs this process may run on
  int physical_cores = 1;  // distinct cores among them (SMT siblings counted once)
  IsaLevel hardware_isa = IsaLevel::kScalar;  // the highest level the CPU offers, before any cap

  // One line for logs and `hearth version`: "AMD EPYC 9R14 (AuthenticAMD family 25 model 17) avx512 ..."
  std::string summary() const;
};

// Probed once per process.
const CpuInfo& cpu_info();

// The level the engine's kernels use: the hardware's, capped by HEARTH_MAX_ISA
// (read once) and by set_isa_cap(). A malformed HEARTH_MAX_ISA is reported on
// stderr once and ignored.
IsaLevel isa_level();
inline bool isa_at_least(IsaLevel level) { return static_cast<int>(isa_level()) >= static_cast<int>(level); }

// Caps the level at run time (tests run every path in one process this way);
// IsaLevel::kAvx512 removes the cap. Kernels choose their path when they run or
// when a plan is built, so set it before building the sessions under test.
void set_isa_cap(IsaLevel cap);

// The cap from HEARTH_MAX_ISA, if one is set and valid.
bool isa_cap_from_environment(IsaLevel* cap);

}  // namespace hearth
