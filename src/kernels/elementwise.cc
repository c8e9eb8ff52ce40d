// Kernel family: elementwise. The kernels live in elementwise_unary.cc (math
// functions), elementwise_binary.cc (broadcast arithmetic, logic, comparison,
// Pow) and elementwise_variadic.cc (Max/Min/Sum/Mean, Where, Cast); shared
// machinery in elementwise_common.h and broadcast.h.
#include "kernels/elementwise_common.h"
#include "kernels/kernel.h"
#include "kernels/register_all.h"

namespace hearth {

void register_elementwise_kernels(KernelRegistry& r) {
  register_elementwise_unary(r);
  register_elementwise_binary(r);
  register_elementwise_variadic(r);
}

}  // namespace hearth
