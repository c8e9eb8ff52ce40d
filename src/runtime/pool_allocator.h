// A session's memory pool: one reserved stretch of address space carved into
// chunks, best fit with splitting and coalescing (the scheme of TensorFlow's and
// ONNX Runtime's BFC arenas). The free chunk at the end of the used range (the
// "wilderness", as dlmalloc calls it) is taken only when no other free chunk
// fits, so a run that starts with everything free places its tensors exactly
// as the first run did: the steady state reuses the same chunks run after run,
// and the pages the pool ever touches stay close to the largest set of tensors
// alive at once.
//
// Pages are touched only when a tensor is written: address space that was never
// handed out costs nothing. Pools share a process-wide budget of address space;
// where it is spent, or the reservation cannot be made (an address-space limit),
// or a block does not fit, blocks come from the heap one by one.
//
// Blocks hold the pool alive, so they may outlive the session that made them; once
// the session lets go (orphan()), freed chunks give their pages back at once.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "core/tensor.h"

namespace hearth {

class PoolAllocator final : public Allocator, public std::enable_shared_from_this<PoolAllocator> {
 public:
  // reserve_bytes: address space to reserve (taken from the process-wide budget);
  // 0 picks the machine's memory, at most 8 GiB and a sixteenth of the budget.
  static std::shared_ptr<PoolAllocator> create(size_t reserve_bytes = 0);
  ~PoolAllocator() override;
  PoolAllocator(const PoolAllocator&) = delete;
  PoolAllocator& operator=(const PoolAllocator&) = delete;

  // Throws std::bad_alloc when memory runs out, and SizeError (core/checked_math.h)
  // when the block would take the live bytes over the limit.
  std::shared_ptr<void> allocate(size_t bytes) override;

  // The most bytes the pool may have handed out at once (0: no limit): a model's
  // memory limit. Blocks already out are not affected.
  void set_live_limit(size_t bytes);

  // The owner is gone: chunks freed from now on return their pages to the system.
  void orphan();

  size_t held_bytes() const;         // arena high-water mark + heap blocks alive or kept
  size_t live_bytes() const;         // handed out and not yet freed
  size_t peak_live_bytes() const;    // the most ever handed out at once
  size_t fresh_allocations() const;  // times the arena grew or a heap block was made
  size_t reserved_bytes() const { return reserved_; }  // 0: heap blocks only

  // Empty when the chunk bookkeeping is consistent, else what is wrong (for tests).
  std::string check() const;

 private:
  struct Chunk {
    size_t size;
    bool free;
  };
  explicit PoolAllocator(size_t reserve_bytes);
  void* take_from_arena(size_t size);  // nullptr when the arena cannot hold it
  void release(void* p, size_t size);
  void release_to_arena(size_t offset);
  bool commit_to(size_t end);
  bool in_arena(const void* p) const;

  mutable std::mutex mu_;
  char* base_ = nullptr;  // reservation (PROT_NONE beyond committed_)
  size_t reserved_ = 0;
  size_t committed_ = 0;  // readable and writable below this offset
  size_t top_ = 0;        // chunks cover [0, top_)
  std::map<size_t, Chunk> chunks_;              // by offset
  std::set<std::pair<size_t, size_t>> by_size_;  // free chunks but the last: (size, offset)
  std::multimap<size_t, void*> heap_free_;      // fallback blocks kept for reuse
  size_t heap_held_ = 0;
  size_t live_ = 0, peak_live_ = 0;
  size_t live_limit_ = 0;
  size_t fresh_ = 0;
  bool orphaned_ = false;
};

}  // namespace hearth
