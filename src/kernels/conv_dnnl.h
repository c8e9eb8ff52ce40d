// oneDNN float32 Conv / ConvTranspose for one input shape: the primitive is
// built once, blocked weights are reordered once when they are constant, and
// src/dst are reordered per call from/to the caller's layout (plain NC(D)HW, or
// the 8-channel blocked layout of graph/nchwc.h) when oneDNN prefers another.
// Owned by one kernel; not for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/conv_fusion.h"
#include "kernels/conv_geometry.h"

namespace hearth {

struct DnnlConvImpl;  // oneDNN objects, kept out of this header

class DnnlConvPlan {
 public:
  ~DnnlConvPlan();
  // Builds the primitive for `window` (native spatial rank 1..3). For a
  // transposed conv, window.pad_end is the net end crop (may be negative).
  // `fusion` adds oneDNN post-ops (sum of Z, activation).
  // Fails (Status) when oneDNN has no implementation; callers fall back.
  // `src_blocked` / `dst_blocked`: the caller's x / y (and z) are in the
  // 8-channel blocked layout (their channel count must be a multiple of 8).
  // `hold_layout`: the primitive works on the blocked sides as they are (on
  // AVX-512 oneDNN then runs its AVX2 kernels); otherwise oneDNN picks its
  // layout (16-channel blocks on AVX-512) and x, y, z are reordered per call.
  static Result<std::unique_ptr<DnnlConvPlan>> create(bool transpose, int64_t n, int64_t c_in, int64_t c_out,
                                                      int64_t group, const Window& window, bool has_bias,
                                                      const ConvFusion& fusion = {}, bool src_blocked = false,
                                                      bool dst_blocked = false, bool hold_layout = true);
  // y = act(op(x, w) + b + z). With `weights_constant`, `w` is reordered on the
  // first call only and must then stay the same data for the plan's lifetime.
  // `z` (shape of y) is required when the plan fuses a sum, ignored otherwise.
  // Temporary blocked-layout buffers come from `scratch` (default heap when null).
  Status run(const float* x, const float* w, const float* b, float* y, bool weights_constant,
             const float* z = nullptr, Allocator* scratch = nullptr);

  // oneDNN's implementation, e.g. "jit_1x1:avx2", "brgconv:avx512_core".
  std::string implementation() const;

 private:
  DnnlConvPlan();
  std::unique_ptr<DnnlConvImpl> impl_;
};

}  // namespace hearth
