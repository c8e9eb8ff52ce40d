// Registration entry points, one per kernel family file.
#pragma once

namespace hearth {

class KernelRegistry;

void register_all_kernels(KernelRegistry& r);

void register_elementwise_kernels(KernelRegistry& r);  // elementwise.cc: unary/binary math, logic, Where, Cast
void register_activation_kernels(KernelRegistry& r);   // activation.cc: Relu, Sigmoid, Softmax, Gelu, ...
void register_shape_kernels(KernelRegistry& r);        // shape_ops.cc: Reshape, Transpose, Concat, Slice, ...
void register_gather_kernels(KernelRegistry& r);       // gather.cc: Gather*, Scatter*, NonZero, OneHot, ...
void register_reduce_kernels(KernelRegistry& r);       // reduce.cc: Reduce*, ArgMax/Min, TopK, CumSum, Einsum
void register_conv_kernels(KernelRegistry& r);         // conv.cc: Conv, ConvTranspose (oneDNN + reference)
void register_matmul_kernels(KernelRegistry& r);       // matmul.cc: MatMul, Gemm (oneDNN + reference)
void register_pool_kernels(KernelRegistry& r);         // pool.cc: MaxPool, AveragePool, Global*, LpPool
void register_norm_kernels(KernelRegistry& r);         // norm.cc: BatchNorm, LayerNorm, InstanceNorm, LRN
void register_resize_kernels(KernelRegistry& r);       // resize.cc: Resize, Upsample, Pad, ...
void register_quantized_kernels(KernelRegistry& r);    // quantized.cc: QuantizeLinear, QLinearConv, ...
void register_rnn_kernels(KernelRegistry& r);          // rnn.cc: RNN, GRU, LSTM
void register_signal_kernels(KernelRegistry& r);       // signal.cc: DFT, STFT, window functions, MelWeightMatrix
void register_detection_kernels(KernelRegistry& r);    // detection.cc: NonMaxSuppression, RoiAlign, GridSample, ...
void register_loss_kernels(KernelRegistry& r);         // loss.cc: SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss
void register_nchwc_kernels(KernelRegistry& r);        // nchwc.cc: blocked-layout reorders and global pools
void register_qdq_kernels(KernelRegistry& r);          // qdq_conv.cc: ai.hearth QDQConv (a QDQ Conv on oneDNN int8)

}  // namespace hearth
