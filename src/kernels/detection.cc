// Kernel family: detection (to be filled in).
#include "kernels/kernel.h"
#include "kernels/register_all.h"

namespace hearth {

void register_detection_kernels(KernelRegistry& r) { (void)r; }

}  // namespace hearth
