// Element types. Values equal ONNX TensorProto::DataType so conversion is a cast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hearth {

enum class DataType : int32_t {
  kUndefined = 0,
  kFloat = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBFloat16 = 16,
};

// Bytes per element; 0 for kUndefined, kString and unknown values.
size_t dtype_size(DataType t);
// ONNX spelling: "float", "int64", "bool", ... ("undefined(N)" for unknown values).
std::string dtype_name(DataType t);
// True for the types Hearth can hold in a Tensor (all numeric types and bool).
bool dtype_is_supported(DataType t);
bool dtype_is_float(DataType t);    // float, double, float16, bfloat16
bool dtype_is_integer(DataType t);  // signed or unsigned integers (not bool)
bool dtype_is_signed(DataType t);

// 16-bit float storage types; converted to float for arithmetic.
struct Float16 {
  uint16_t bits = 0;
};
struct BFloat16 {
  uint16_t bits = 0;
};
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even
inline float bfloat16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_bfloat16(float f);  // round to nearest even

// Maps a C++ type to its DataType: dtype_of<float>() == DataType::kFloat.
template <typename T> constexpr DataType dtype_of();
template <> constexpr DataType dtype_of<float>() { return DataType::kFloat; }
template <> constexpr DataType dtype_of<double>() { return DataType::kDouble; }
template <> constexpr DataType dtype_of<uint8_t>() { return DataType::kUInt8; }
template <> constexpr DataType dtype_of<int8_t>() { return DataType::kInt8; }
template <> constexpr DataType dtype_of<uint16_t>() { return DataType::kUInt16; }
template <> constexpr DataType dtype_of<int16_t>() { return DataType::kInt16; }
template <> constexpr DataType dtype_of<int32_t>() { return DataType::kInt32; }
template <> constexpr DataType dtype_of<int64_t>() { return DataType::kInt64; }
template <> constexpr DataType dtype_of<uint32_t>() { return DataType::kUInt32; }
template <> constexpr DataType dtype_of<uint64_t>() { return DataType::kUInt64; }
template <> constexpr DataType dtype_of<bool>() { return DataType::kBool; }
template <> constexpr DataType dtype_of<Float16>() { return DataType::kFloat16; }
template <> constexpr DataType dtype_of<BFloat16>() { return DataType::kBFloat16; }

// Calls fn(T{}) with T the C++ type of `t` for every numeric type and bool,
// returning what fn returns. Unsupported types call on_error().
//   dispatch_all(t, [&](auto tag) { using T = decltype(tag); ... }, [&]{ ... });
template <typename Fn, typename Err>
auto dispatch_all(DataType t, Fn&& fn, Err&& on_error) {
  switch (t) {
    case DataType::kFloat: return fn(float{});
    case DataType::kDouble: return fn(double{});
    case DataType::kUInt8: return fn(uint8_t{});
    case DataType::kInt8: return fn(int8_t{});
    case DataType::kUInt16: return fn(uint16_t{});
    case DataType::kInt16: return fn(int16_t{});
    case DataType::kInt32: return fn(int32_t{});
    case DataType::kInt64: return fn(int64_t{});
    case DataType::kUInt32: return fn(uint32_t{});
    case DataType::kUInt64: return fn(uint64_t{});
    case DataType::kBool: return fn(bool{});
    case DataType::kFloat16: return fn(Float16{});
    case DataType::kBFloat16: return fn(BFloat16{});
    default: return on_error();
  }
}

// Same, restricted to types with native arithmetic (no bool, no 16-bit floats).
template <typename Fn, typename Err>
auto dispatch_arith(DataType t, Fn&& fn, Err&& on_error) {
  switch (t) {
    case DataType::kFloat: return fn(float{});
    case DataType::kDouble: return fn(double{});
    case DataType::kUInt8: return fn(uint8_t{});
    case DataType::kInt8: return fn(int8_t{});
    case DataType::kUInt16: return fn(uint16_t{});
    case DataType::kInt16: return fn(int16_t{});
    case DataType::kInt32: return fn(int32_t{});
    case DataType::kInt64: return fn(int64_t{});
    case DataType::kUInt32: return fn(uint32_t{});
    case DataType::kUInt64: return fn(uint64_t{});
    default: return on_error();
  }
}

}  // namespace hearth
