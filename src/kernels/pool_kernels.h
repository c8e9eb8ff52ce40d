// Registration hook shared by the pooling family's files (pool.cc calls it).
#pragma once

#include "kernels/kernel.h"

namespace hearth {

// GlobalAveragePool, GlobalMaxPool, GlobalLpPool, MaxUnpool, MaxRoiPool (pool_global.cc).
void register_pool_global_kernels(KernelRegistry& r);

}  // namespace hearth
