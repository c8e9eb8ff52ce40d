// Integer arithmetic that wraps (two's complement, as numpy and ONNX Runtime do)
// instead of overflowing, which is undefined behaviour in C++ for signed types and
// for the narrow unsigned types C++ promotes to int (65535 * 65535). Floating-point
// and other types keep their usual operators. Internal to src/kernels.
#pragma once

#include <cstdint>
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

}  // namespace hearth
