// Kernel family: signal (to be filled in).
#include "kernels/kernel.h"
#include "kernels/register_all.h"

namespace hearth {

void register_signal_kernels(KernelRegistry& r) { (void)r; }

}  // namespace hearth
