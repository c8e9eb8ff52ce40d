// What the kernels run on this machine, for `hearth cpu`, logs and reports.
// (The engine's own kernels dispatch on core/machine.h's isa_level().)
#pragma once

#include <string>

namespace hearth {

// oneDNN's effective ISA after any cap: "avx512_core_bf16", "avx2", ...
std::string onednn_isa_name();

}  // namespace hearth
