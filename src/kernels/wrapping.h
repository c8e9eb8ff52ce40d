// Integer arithmetic that wraps (two's complement, as numpy and ONNX Runtime do)
// instead of overflowing, which is undefined behaviour in C++ for signed types and
// for the narrow unsigned types C++ promotes to int (65535 * 65535), and a
// conversion of floating-point results to integers that saturates instead of being
// undefined for NaN, infinities and out-of-range values. Floating-point and other
// types keep their usual operators. Internal to src/kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace hearth {

// Unsigned arithmetic at least as wide as int for an integer type I.
template <typename I>
using WrapType = std::conditional_t<(sizeof(I) > 4), uint64_t, uint32_t>;

template <typename C>
constexpr bool kWraps = std::is_integral_v<C> && !std::is_same_v<C, bool>;

template <typename C>
C wrap_add(C a, C b) {
  if constexpr (kWraps<C>) return static_cast<C>(static_cast<WrapType<C>>(a) + static_cast<WrapType<C>>(b));
  else return a + b;
}
template <typename C>
C wrap_sub(C a, C b) {
  if constexpr (kWraps<C>) return static_cast<C>(static_cast<WrapType<C>>(a) - static_cast<WrapType<C>>(b));
  else return a - b;
}
template <typename C>
C wrap_mul(C a, C b) {
  if constexpr (kWraps<C>) return static_cast<C>(static_cast<WrapType<C>>(a) * static_cast<WrapType<C>>(b));
  else return a * b;
}
// |x|; the most negative integer stays itself, as in two's complement.
template <typename C>
C wrap_abs(C x) {
  if constexpr (kWraps<C> && std::is_signed_v<C>) return x < C(0) ? wrap_sub(C(0), x) : x;
  else if constexpr (std::is_unsigned_v<C>) return x;
  else return x < C(0) ? -x : x;
}

// `v` as a T: integers saturate at their range and take 0 for NaN; other types convert.
template <typename T>
T saturating_cast(double v) {
  if constexpr (kWraps<T>) {
    if (v != v) return T(0);
    // The bounds as doubles: max() of 64-bit types rounds up to 2^63 / 2^64, which
    // does not fit, so values from there on take max() directly.
    constexpr double lo = static_cast<double>(std::numeric_limits<T>::lowest());
    constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
    if (v >= hi) return std::numeric_limits<T>::max();
    return static_cast<T>(std::max(v, lo));
  } else {
    return static_cast<T>(v);
  }
}

}  // namespace hearth
