// Kernel family: norm (to be filled in).
#include "kernels/kernel.h"
#include "kernels/register_all.h"

namespace hearth {

void register_norm_kernels(KernelRegistry& r) { (void)r; }

}  // namespace hearth
