#include "core/checked_math.h"

#include <limits>
#include <string>

namespace hearth {
namespace {

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

// Product of the dims with zeros counted as ones; errors for a negative dim or overflow.
// A zero dim makes the tensor empty whatever the others are, but a shape whose other
// dims overflow is still refused, whatever their order: kernels loop over dims.
Result<int64_t> extent(const std::vector<int64_t>& dims, bool* empty) {
  int64_t nonzero = 1;
  *empty = false;
  for (int64_t d : dims) {
    if (d < 0) return invalid_argument("shape ", dims_str(dims), " has a negative dimension");
    if (d == 0) *empty = true;
    else if (mul_overflows(nonzero, d, &nonzero))
      return invalid_argument("shape ", dims_str(dims), " has more elements than fit in 64 bits");
  }
  return nonzero;
}

Result<size_t> times_elem(int64_t n, DataType dtype, const std::vector<int64_t>& dims) {
  int64_t bytes;
  const int64_t elem = static_cast<int64_t>(dtype_size(dtype));
  if (mul_overflows(n, elem, &bytes) || bytes > std::numeric_limits<int64_t>::max() / 2) {
    return invalid_argument("shape ", dims_str(dims), " of ", dtype_name(dtype), " needs more bytes than fit in 63 bits");
  }
  return static_cast<size_t>(bytes);
}

}  // namespace

Result<int64_t> checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (mul_overflows(a, b, &r)) return invalid_argument(what, ": ", a, " * ", b, " does not fit in 64 bits");
  return r;
}

Result<int64_t> checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (add_overflows(a, b, &r)) return invalid_argument(what, ": ", a, " + ", b, " does not fit in 64 bits");
  return r;
}

Result<int64_t> checked_numel(const std::vector<int64_t>& dims) {
  bool empty;
  HEARTH_ASSIGN_OR_RETURN(int64_t n, extent(dims, &empty));
  return empty ? 0 : n;
}

Result<size_t> checked_nbytes(DataType dtype, const std::vector<int64_t>& dims) {
  HEARTH_ASSIGN_OR_RETURN(int64_t n, checked_numel(dims));
  return times_elem(n, dtype, dims);
}

Result<size_t> checked_extent_bytes(DataType dtype, const std::vector<int64_t>& dims) {
  bool empty;
  HEARTH_ASSIGN_OR_RETURN(int64_t n, extent(dims, &empty));
  return times_elem(n, dtype, dims);
}

}  // namespace hearth
