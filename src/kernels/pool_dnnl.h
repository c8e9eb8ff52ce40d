// oneDNN float32 MaxPool (without Indices) / AveragePool on plain NC(D)HW
// tensors, or on the 8-channel blocked layout of graph/nchwc.h, built once per
// input shape. Owned by one kernel; not for concurrent use.
#pragma once

#include <memory>

#include "core/status.h"
#include "kernels/conv_geometry.h"

namespace hearth {

struct DnnlPoolImpl;

enum class DnnlPoolKind { kMax, kAvgIncludePad, kAvgExcludePad };

class DnnlPoolPlan {
 public:
  ~DnnlPoolPlan();
  // Fails (Status) when oneDNN cannot express the window exactly (callers fall
  // back to the reference): e.g. count_include_pad with ceil_mode overhang.
  // `blocked`: x and y are in the blocked layout (c a multiple of 8).
  static Result<std::unique_ptr<DnnlPoolPlan>> create(DnnlPoolKind kind, int64_t n, int64_t c, const Window& w,
                                                      bool blocked = false);
  Status run(const float* x, float* y);

 private:
  DnnlPoolPlan();
  std::unique_ptr<DnnlPoolImpl> impl_;
};

}  // namespace hearth
