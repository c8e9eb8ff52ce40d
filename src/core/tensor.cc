#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

namespace hearth {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::vector<int64_t> shape_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

namespace {

class HeapAllocator final : public Allocator {
 public:
  std::shared_ptr<void> allocate(size_t bytes) override {
    size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    if (rounded == 0) rounded = kTensorAlignment;
    void* p = std::aligned_alloc(kTensorAlignment, rounded);
    if (!p) throw std::bad_alloc();
    return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  }
};

}  // namespace

Allocator* default_allocator() {
  static HeapAllocator heap;
  return &heap;
}

namespace {
thread_local size_t t_tensor_limit = 0;
}

TensorLimitScope::TensorLimitScope(size_t max_bytes) : previous_(t_tensor_limit) { t_tensor_limit = max_bytes; }
TensorLimitScope::~TensorLimitScope() { t_tensor_limit = previous_; }

Tensor::Tensor(DataType dtype, Shape shape, Allocator* alloc) : dtype_(dtype), shape_(std::move(shape)) {
  auto bytes = checked_nbytes(dtype_, shape_);
  if (!bytes.ok()) throw SizeError(bytes.status());
  if (t_tensor_limit) {
    const size_t extent = checked_extent_bytes(dtype_, shape_).value();  // cannot fail once nbytes did not
    if (extent > t_tensor_limit) {
      throw SizeError(resource_exhausted("a tensor ", describe(), " needs ", extent, " bytes",
                                         *bytes == extent ? "" : " counting its zero dims as ones",
                                         ", over the limit of ", t_tensor_limit, " bytes for one tensor (max_tensor_bytes)"));
    }
  }
  storage_ = alloc->allocate(*bytes);
  data_ = storage_.get();
}

Tensor Tensor::zeros(DataType dtype, Shape shape, Allocator* alloc) {
  Tensor t(dtype, std::move(shape), alloc);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::view(DataType dtype, Shape shape, std::shared_ptr<void> owner, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = std::move(owner);
  t.data_ = data;
  return t;
}

template <>
Tensor Tensor::from_vector<bool>(const std::vector<bool>& values, Shape shape) {
  Tensor t(DataType::kBool, std::move(shape));
  bool* d = t.data<bool>();
  for (size_t i = 0; i < values.size() && i < static_cast<size_t>(t.numel()); ++i) d[i] = values[i];
  return t;
}

Result<Tensor> Tensor::reshaped(Shape shape) const {
  auto n = checked_numel(shape);
  if (!n.ok() || *n != numel()) {
    return invalid_argument("cannot reshape ", describe(), " to ", shape_str(shape));
  }
  return view(dtype_, std::move(shape), storage_, data_);
}

Tensor Tensor::clone(Allocator* alloc) const {
  if (!defined()) return Tensor();
  Tensor t(dtype_, shape_, alloc);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

std::string Tensor::describe() const { return dtype_name(dtype_) + shape_str(shape_); }

Result<std::vector<int64_t>> tensor_to_int64s(const Tensor& t) {
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  bool ok = true;
  dispatch_arith(
      t.dtype(),
      [&](auto tag) {
        using T = decltype(tag);
        if constexpr (std::is_integral_v<T>) {
          const T* d = t.data<T>();
          for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(d[i]);
        } else {
          ok = false;
        }
        return 0;
      },
      [&] {
        ok = false;
        return 0;
      });
  if (!ok) return invalid_argument("expected an integer tensor, got ", t.describe());
  return out;
}

Result<std::vector<double>> tensor_to_doubles(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  bool ok = true;
  dispatch_all(
      t.dtype(),
      [&](auto tag) {
        using T = decltype(tag);
        const T* d = t.data<T>();
        for (size_t i = 0; i < out.size(); ++i) {
          if constexpr (std::is_same_v<T, Float16>) out[i] = half_to_float(d[i].bits);
          else if constexpr (std::is_same_v<T, BFloat16>) out[i] = bfloat16_to_float(d[i].bits);
          else out[i] = static_cast<double>(d[i]);
        }
        return 0;
      },
      [&] {
        ok = false;
        return 0;
      });
  if (!ok) return invalid_argument("expected a numeric tensor, got ", t.describe());
  return out;
}

namespace {

template <typename T>
double load_as_double(const T& v) {
  if constexpr (std::is_same_v<T, Float16>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<T, BFloat16>) return bfloat16_to_float(v.bits);
  else return static_cast<double>(v);
}

template <typename D>
D store_from_double(double v) {
  if constexpr (std::is_same_v<D, Float16>) return Float16{float_to_half(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, BFloat16>) return BFloat16{float_to_bfloat16(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, bool>) return v != 0.0;
  else if constexpr (std::is_floating_point_v<D>) return static_cast<D>(v);
  else {
    // float -> integer: truncate; NaN/out-of-range follow the wrap of int64.
    if (v != v) return D(0);
    if constexpr (std::is_unsigned_v<D>) {
      if (v < 0) return static_cast<D>(v <= -9223372036854775808.0 ? INT64_MIN : static_cast<int64_t>(v));
      if (v >= 18446744073709551615.0) return static_cast<D>(~uint64_t(0));
      return static_cast<D>(static_cast<uint64_t>(v));
    } else {
      if (v >= 9223372036854775807.0) return static_cast<D>(INT64_MAX);
      if (v <= -9223372036854775808.0) return static_cast<D>(INT64_MIN);
      return static_cast<D>(static_cast<int64_t>(v));
    }
  }
}

}  // namespace

Result<Tensor> cast_tensor(const Tensor& src, DataType dst_type, Allocator* alloc) {
  if (!dtype_is_supported(src.dtype())) return unimplemented("Cast from ", dtype_name(src.dtype()));
  if (!dtype_is_supported(dst_type)) return unimplemented("Cast to ", dtype_name(dst_type));
  Tensor dst(dst_type, src.shape(), alloc);
  const int64_t n = src.numel();
  dispatch_all(
      src.dtype(),
      [&](auto stag) {
        using S = decltype(stag);
        const S* s = src.data<S>();
        return dispatch_all(
            dst_type,
            [&](auto dtag) {
              using D = decltype(dtag);
              D* d = dst.data<D>();
              constexpr bool kIntToInt = std::is_integral_v<S> && std::is_integral_v<D> &&
                                         !std::is_same_v<D, bool>;
              for (int64_t i = 0; i < n; ++i) {
                if constexpr (std::is_same_v<S, D>) d[i] = s[i];
                else if constexpr (kIntToInt) d[i] = static_cast<D>(s[i]);  // exact wrap semantics
                else if constexpr (std::is_same_v<D, bool>) d[i] = load_as_double(s[i]) != 0.0;
                else d[i] = store_from_double<D>(load_as_double(s[i]));
              }
              return 0;
            },
            [] { return 0; });
      },
      [] { return 0; });
  return dst;
}

}  // namespace hearth
