// Tensor: a typed, shaped view of reference-counted, 64-byte aligned memory.
// Copying a Tensor shares its memory (like a shared_ptr); clone() copies data.
// Kernels never write to their inputs, so views (Reshape, Identity) are safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/checked_math.h"
#include "core/dtype.h"
#include "core/status.h"

namespace hearth {

using Shape = std::vector<int64_t>;

// Product of dims (1 for a scalar), for shapes already checked: every Tensor's shape
// is (see checked_numel in core/checked_math.h for shapes that come from a model).
int64_t shape_numel(const Shape& shape);
// "[1,3,224,224]"
std::string shape_str(const Shape& shape);
// Row-major strides in elements.
std::vector<int64_t> shape_strides(const Shape& shape);

// Source of tensor memory. allocate() returns at least `bytes` bytes aligned
// to kTensorAlignment; the memory is released (or recycled) when the last
// shared_ptr copy goes away. Implementations must be thread safe.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual std::shared_ptr<void> allocate(size_t bytes) = 0;
};

constexpr size_t kTensorAlignment = 64;

// Plain aligned heap allocator, shared by everything that has no arena.
Allocator* default_allocator();

// The most bytes one Tensor constructed on this thread may take (counting an empty
// tensor's zero dims as ones, see checked_extent_bytes), while the scope lives; the
// session holds one around every kernel, so a kernel's temporaries are bounded like
// its outputs. Scopes nest; the innermost one rules. 0: no limit.
class TensorLimitScope {
 public:
  explicit TensorLimitScope(size_t max_bytes);
  ~TensorLimitScope();
  TensorLimitScope(const TensorLimitScope&) = delete;
  TensorLimitScope& operator=(const TensorLimitScope&) = delete;

 private:
  size_t previous_;
};

class Tensor {
 public:
  Tensor() = default;
  // Uninitialized memory of numel(shape) elements from `alloc`. Throws SizeError when
  // a dim is negative, the byte size does not fit (see core/checked_math.h) or is
  // over the TensorLimitScope in force, and what `alloc` throws (std::bad_alloc,
  // SizeError for a limit).
  Tensor(DataType dtype, Shape shape, Allocator* alloc = default_allocator());
  // Tensor filled with zero bytes.
  static Tensor zeros(DataType dtype, Shape shape, Allocator* alloc = default_allocator());
  // Borrows `data`, kept alive by `owner` (may be null for static memory).
  static Tensor view(DataType dtype, Shape shape, std::shared_ptr<void> owner, void* data);
  // Scalar or 1-D helpers, mostly for tests and attributes.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, Shape shape);
  template <typename T>
  static Tensor scalar(T value) { return from_vector<T>({value}, {}); }

  bool defined() const { return dtype_ != DataType::kUndefined; }
  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  size_t rank() const { return shape_.size(); }
  int64_t dim(size_t i) const { return shape_[i]; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }
  template <typename T> T* data() { return static_cast<T*>(data_); }
  template <typename T> const T* data() const { return static_cast<const T*>(data_); }

  // True when this tensor is the only Tensor holding its memory's owner: no other
  // Tensor, not even a view of another shape, can observe a write to it. Memory
  // passed to view() under an owner that something else also reaches (a wrapper
  // with its own count) is not covered; the session only asks this of tensors
  // its kernels allocated.
  bool sole_owner() const { return storage_ != nullptr && storage_.use_count() == 1; }
  // The same memory under a new dtype and shape of at most the same byte size;
  // both tensors keep it alive.
  Tensor alias(DataType dtype, Shape shape) const { return view(dtype, std::move(shape), storage_, data_); }

  // Same memory, new shape with the same element count.
  Result<Tensor> reshaped(Shape shape) const;
  // Deep copy into fresh memory.
  Tensor clone(Allocator* alloc = default_allocator()) const;
  // "float[1,3,224,224]"
  std::string describe() const;

 private:
  DataType dtype_ = DataType::kUndefined;
  Shape shape_;
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
};

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, Shape shape) {
  Tensor t(dtype_of<T>(), std::move(shape));
  T* d = t.data<T>();
  for (size_t i = 0; i < values.size() && i < static_cast<size_t>(t.numel()); ++i) d[i] = values[i];
  return t;
}
template <>
Tensor Tensor::from_vector<bool>(const std::vector<bool>& values, Shape shape);

// Reads an integer tensor (int8..uint64) as int64 values; errors for other types.
Result<std::vector<int64_t>> tensor_to_int64s(const Tensor& t);
// Reads a float/double/integer tensor as doubles.
Result<std::vector<double>> tensor_to_doubles(const Tensor& t);
// Converts every element of `src` into `dst_type` (numeric, bool, 16-bit floats;
// float->int truncates toward zero as ONNX Cast does).
Result<Tensor> cast_tensor(const Tensor& src, DataType dst_type, Allocator* alloc = default_allocator());

}  // namespace hearth
