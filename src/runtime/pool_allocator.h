// A recycling allocator: freed blocks go back to a free list keyed by size,
// so a session's steady state reuses the same buffers run after run.
// Blocks outlive the allocator safely (they free themselves if it is gone).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/tensor.h"

namespace hearth {

class PoolAllocator final : public Allocator, public std::enable_shared_from_this<PoolAllocator> {
 public:
  static std::shared_ptr<PoolAllocator> create() { return std::shared_ptr<PoolAllocator>(new PoolAllocator()); }
  ~PoolAllocator() override;
  std::shared_ptr<void> allocate(size_t bytes) override;

  size_t held_bytes() const;     // in use + free
  size_t fresh_allocations() const;  // heap allocations made so far (not recycled)

 private:
  PoolAllocator() = default;
  void recycle(void* p, size_t size);

  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;
  size_t held_ = 0;
  size_t fresh_ = 0;
};

}  // namespace hearth
