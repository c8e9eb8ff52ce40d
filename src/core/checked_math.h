// Size arithmetic on values that come from models and requests: dims, attribute
// values, element counts, byte sizes, offsets. A model file is untrusted input, so
// every product and sum of such values goes through these helpers, which report
// overflow instead of wrapping. The one place for it: Tensor, the kernels that
// compute output shapes, the runtime and the importer all call these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace hearth {

// *out = a * b (a + b); true when the exact result does not fit in int64.
inline bool mul_overflows(int64_t a, int64_t b, int64_t* out) { return __builtin_mul_overflow(a, b, out); }
inline bool add_overflows(int64_t a, int64_t b, int64_t* out) { return __builtin_add_overflow(a, b, out); }

// a * b and a + b, or an invalid_argument error naming `what` ("Tile output dim 0").
Result<int64_t> checked_mul(int64_t a, int64_t b, const char* what);
Result<int64_t> checked_add(int64_t a, int64_t b, const char* what);

// Product of dims (1 for a scalar); an error names the shape when a dim is negative
// or the product does not fit in int64.
Result<int64_t> checked_numel(const std::vector<int64_t>& dims);
// numel(dims) * dtype_size(dtype); the same errors, and one when the bytes do not fit.
Result<size_t> checked_nbytes(DataType dtype, const std::vector<int64_t>& dims);
// The bytes of `dims` with every zero dim counted as one. An empty tensor costs no
// memory, but kernels loop over its other dims ([2^40, 2, 0] is empty and still
// means 2^41 iterations), so limits on tensor size apply to this extent.
Result<size_t> checked_extent_bytes(DataType dtype, const std::vector<int64_t>& dims);

// Thrown where a size error cannot be returned as a value: Tensor's constructor and
// KernelContext::allocate_output, whose callers (every kernel) assume success. The
// session catches it around each kernel (runtime/session.cc) and returns its status,
// so it never leaves the engine's public API.
class SizeError : public std::exception {
 public:
  explicit SizeError(Status status) : status_(std::move(status)) {}
  const Status& status() const { return status_; }
  const char* what() const noexcept override { return status_.message().c_str(); }

 private:
  Status status_;
};

}  // namespace hearth
