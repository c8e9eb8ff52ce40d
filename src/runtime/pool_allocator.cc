#include "runtime/pool_allocator.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <new>

namespace hearth {
namespace {

constexpr size_t kCommitStep = size_t{2} << 20;  // permissions change in 2 MiB steps
constexpr size_t kMinSplit = 256;                // smaller remainders stay with the chunk

size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

// Address space for one pool: the machine's memory, at most 32 GiB (a thousand
// sessions then fit in the 47-bit address space; larger tensors go to the heap),
// and less where an address-space limit is set.
size_t default_reservation() {
#if defined(__SANITIZE_ADDRESS__)
  return 0;  // heap blocks only, so AddressSanitizer sees every tensor's bounds
#endif
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  size_t bytes = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : size_t{1} << 32;
  bytes = std::min(bytes, size_t{32} << 30);
  rlimit as{};
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) bytes = std::min<size_t>(bytes, as.rlim_cur / 8);
  return round_up(std::max(bytes, kCommitStep), kCommitStep);
}

// Gives the whole pages inside [p, p + size) back to the system; they read as
// zeros when touched again.
void drop_pages(char* p, size_t size) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const auto begin = round_up(reinterpret_cast<uintptr_t>(p), page);
  const auto end = (reinterpret_cast<uintptr_t>(p) + size) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

std::shared_ptr<PoolAllocator> PoolAllocator::create(size_t reserve_bytes) {
  return std::shared_ptr<PoolAllocator>(new PoolAllocator(reserve_bytes ? reserve_bytes : default_reservation()));
}

PoolAllocator::PoolAllocator(size_t reserve_bytes) {
  reserve_bytes = round_up(reserve_bytes, kCommitStep);
  // PROT_NONE costs no commit charge; pages become writable as the arena grows
  // (commit_to), so a strict overcommit policy refuses growth, not the reservation.
  if (reserve_bytes == 0) return;
  void* p = mmap(nullptr, reserve_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p != MAP_FAILED) {
    base_ = static_cast<char*>(p);
    reserved_ = reserve_bytes;
  }
}

PoolAllocator::~PoolAllocator() {
  // Every block holds the pool, so none is alive here.
  if (base_) munmap(base_, reserved_);
  for (auto& [size, p] : heap_free_) std::free(p);
}

bool PoolAllocator::commit_to(size_t end) {
  if (end <= committed_) return true;
  const size_t target = std::min(round_up(end, kCommitStep), reserved_);
  if (target < end) return false;
  if (mprotect(base_ + committed_, target - committed_, PROT_READ | PROT_WRITE) != 0) return false;
  committed_ = target;
  return true;
}

void* PoolAllocator::take_from_arena(size_t size) {
  size_t offset;
  auto fit = by_size_.lower_bound({size, 0});
  if (fit != by_size_.end()) {
    offset = fit->second;
    by_size_.erase(fit);
    Chunk& c = chunks_.at(offset);
    c.free = false;
    if (c.size - size >= kMinSplit) {
      const size_t rest = c.size - size;
      c.size = size;
      chunks_.emplace(offset + size, Chunk{rest, true});
      by_size_.emplace(rest, offset + size);
    }
    return base_ + offset;
  }
  // Nothing fits: grow at the top, starting inside the last chunk when it is free.
  auto last = chunks_.empty() ? chunks_.end() : std::prev(chunks_.end());
  const bool extend = last != chunks_.end() && last->second.free;
  offset = extend ? last->first : top_;
  if (size > reserved_ - offset || !commit_to(offset + size)) return nullptr;
  if (extend) {
    by_size_.erase({last->second.size, last->first});
    last->second = Chunk{size, false};
  } else {
    chunks_.emplace(offset, Chunk{size, false});
  }
  top_ = offset + size;
  ++fresh_;
  return base_ + offset;
}

std::shared_ptr<void> PoolAllocator::allocate(size_t bytes) {
  if (bytes > (SIZE_MAX >> 1)) throw std::bad_alloc();  // would wrap when rounded up
  size_t size = round_up(std::max<size_t>(bytes, 1), kTensorAlignment);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (base_) p = take_from_arena(size);
    if (!p) {
      // Heap blocks are reused by the smallest that fits and is at most twice the size.
      auto it = heap_free_.lower_bound(size);
      if (it != heap_free_.end() && it->first <= 2 * size) {
        size = it->first;
        p = it->second;
        heap_free_.erase(it);
      }
    }
    if (!p) {
      p = std::aligned_alloc(kTensorAlignment, size);
      if (!p) throw std::bad_alloc();
      heap_held_ += size;
      ++fresh_;
    }
    live_ += size;
    peak_live_ = std::max(peak_live_, live_);
  }
  return std::shared_ptr<void>(p, [self = shared_from_this(), size](void* q) { self->release(q, size); });
}

void PoolAllocator::release(void* p, size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  live_ -= size;
  char* c = static_cast<char*>(p);
  if (base_ && c >= base_ && c < base_ + reserved_) {
    release_to_arena(static_cast<size_t>(c - base_));
  } else if (orphaned_) {
    std::free(p);
    heap_held_ -= size;
  } else {
    heap_free_.emplace(size, p);
  }
}

void PoolAllocator::release_to_arena(size_t offset) {
  auto it = chunks_.find(offset);
  it->second.free = true;
  auto next = std::next(it);
  if (next != chunks_.end() && next->second.free) {
    by_size_.erase({next->second.size, next->first});
    it->second.size += next->second.size;
    chunks_.erase(next);
  }
  if (it != chunks_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.free) {
      by_size_.erase({prev->second.size, prev->first});
      prev->second.size += it->second.size;
      chunks_.erase(it);
      it = prev;
    }
  }
  by_size_.emplace(it->second.size, it->first);
  if (orphaned_) drop_pages(base_ + it->first, it->second.size);
}

void PoolAllocator::orphan() {
  std::lock_guard<std::mutex> lock(mu_);
  orphaned_ = true;
  for (const auto& [size, offset] : by_size_) drop_pages(base_ + offset, size);
  for (auto& [size, p] : heap_free_) {
    std::free(p);
    heap_held_ -= size;
  }
  heap_free_.clear();
}

size_t PoolAllocator::held_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return top_ + heap_held_;
}

size_t PoolAllocator::live_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_;
}

size_t PoolAllocator::peak_live_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_live_;
}

size_t PoolAllocator::fresh_allocations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fresh_;
}

}  // namespace hearth
