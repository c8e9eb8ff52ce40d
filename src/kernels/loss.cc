// Kernel family: loss (to be filled in).
#include "kernels/kernel.h"
#include "kernels/register_all.h"

namespace hearth {

void register_loss_kernels(KernelRegistry& r) { (void)r; }

}  // namespace hearth
