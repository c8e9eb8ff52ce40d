#include "kernels/register_all.h"

namespace hearth {

void register_all_kernels(KernelRegistry& r) {
  register_elementwise_kernels(r);
  register_activation_kernels(r);
  register_shape_kernels(r);
  register_gather_kernels(r);
  register_reduce_kernels(r);
  register_conv_kernels(r);
  register_matmul_kernels(r);
  register_pool_kernels(r);
  register_norm_kernels(r);
  register_resize_kernels(r);
  register_quantized_kernels(r);
  register_rnn_kernels(r);
  register_signal_kernels(r);
  register_detection_kernels(r);
  register_loss_kernels(r);
  register_nchwc_kernels(r);
  register_qdq_kernels(r);
}

}  // namespace hearth
