#include "runtime/pool_allocator.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <new>

#include "core/machine.h"
#include "core/status.h"

namespace hearth {
namespace {

constexpr size_t kCommitStep = size_t{2} << 20;  // permissions change in 2 MiB steps
constexpr size_t kMinSplit = 256;                // smaller remainders stay with the chunk

size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

// Address space all pools may reserve together: an eighth of the 47-bit user
// space, or a quarter of an address-space limit, so that heaps, stacks and
// libraries keep room. Sessions of If/Loop/Scan subgraphs have pools too.
size_t budget() {
  static const size_t bytes = [] {
    size_t b = size_t{16} << 40;
    rlimit as{};
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) b = std::min<size_t>(b, as.rlim_cur / 4);
    return b;
  }();
  return bytes;
}
std::atomic<size_t> g_reserved{0};

// One pool's default reservation: the machine's memory, at most 8 GiB and at
// most a sixteenth of the budget. Tensors past it come from the heap.
size_t default_reservation() {
#if defined(__SANITIZE_ADDRESS__)
  return 0;  // heap blocks only, so AddressSanitizer sees every tensor's bounds
#endif
  return std::min({physical_memory_bytes(), size_t{8} << 30, budget() / 16}) / kCommitStep * kCommitStep;
}

// Takes up to `want` bytes (whole commit steps) from the budget; what it got.
size_t claim(size_t want) {
  size_t cur = g_reserved.load();
  for (;;) {
    const size_t left = cur < budget() ? budget() - cur : 0;
    const size_t got = std::min(want, left) / kCommitStep * kCommitStep;
    if (got == 0) return 0;
    if (g_reserved.compare_exchange_weak(cur, cur + got)) return got;
  }
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
  const size_t want = claim(std::min(reserve_bytes, SIZE_MAX - kCommitStep) + kCommitStep - 1);
  if (want == 0) return;
  // PROT_NONE costs no commit charge; pages become writable as the arena grows
  // (commit_to), so a strict overcommit policy refuses growth, not the reservation.
  void* p = mmap(nullptr, want, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    g_reserved -= want;
    return;
  }
  base_ = static_cast<char*>(p);
  reserved_ = want;
}

PoolAllocator::~PoolAllocator() {
  // Every block holds the pool, so none is alive here.
  if (base_) {
    munmap(base_, reserved_);
    g_reserved -= reserved_;
  }
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

bool PoolAllocator::in_arena(const void* p) const {
  const auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base_);
  return base_ && a >= b && a - b < reserved_;
}

void* PoolAllocator::take_from_arena(size_t size) {
  auto fit = by_size_.lower_bound({size, 0});
  if (fit != by_size_.end()) {
    const size_t offset = fit->second;
    by_size_.erase(fit);
    Chunk& c = chunks_.at(offset);
    c.free = false;
    if (c.size - size >= kMinSplit) {
      const size_t rest = c.size - size;
      c.size = size;
      chunks_.emplace(offset + size, Chunk{rest, true});
      by_size_.emplace(rest, offset + size);  // not the last chunk: the taken one was not
    }
    return base_ + offset;
  }
  // Nothing else fits: the wilderness (a free last chunk) or new space at the top.
  auto last = chunks_.empty() ? chunks_.end() : std::prev(chunks_.end());
  const bool wild = last != chunks_.end() && last->second.free;
  const size_t offset = wild ? last->first : top_;
  if (size > reserved_ - offset || !commit_to(offset + size)) return nullptr;
  if (wild && last->second.size > size) {  // split it, however small the rest
    const size_t rest = last->second.size - size;
    last->second = Chunk{size, false};
    chunks_.emplace(offset + size, Chunk{rest, true});
    return base_ + offset;
  }
  if (wild) {
    last->second = Chunk{size, false};
  } else {
    chunks_.emplace(offset, Chunk{size, false});
  }
  if (offset + size > top_) {
    top_ = offset + size;
    ++fresh_;
  }
  return base_ + offset;
}

std::shared_ptr<void> PoolAllocator::allocate(size_t bytes) {
  if (bytes > (SIZE_MAX >> 2)) throw std::bad_alloc();  // would wrap when rounded up or doubled
  size_t size = round_up(std::max<size_t>(bytes, 1), kTensorAlignment);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (live_limit_ && size > live_limit_ - std::min(live_, live_limit_)) {
      throw SizeError(resource_exhausted("a block of ", bytes, " bytes would take the session's tensors to ",
                                         live_ + size, " bytes, over its memory limit of ", live_limit_,
                                         " bytes (max_memory_bytes)"));
    }
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

void PoolAllocator::set_live_limit(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  live_limit_ = bytes;
}

void PoolAllocator::release(void* p, size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  live_ -= size;
  if (in_arena(p)) {
    release_to_arena(static_cast<size_t>(static_cast<char*>(p) - base_));
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
  // Only the freed chunk's own pages: its free neighbours gave theirs back already.
  if (orphaned_) drop_pages(base_ + it->first, it->second.size);
  auto next = std::next(it);
  if (next != chunks_.end() && next->second.free) {
    by_size_.erase({next->second.size, next->first});  // no-op for the wilderness
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
  if (std::next(it) != chunks_.end()) by_size_.emplace(it->second.size, it->first);  // else: the wilderness
}

void PoolAllocator::orphan() {
  std::lock_guard<std::mutex> lock(mu_);
  orphaned_ = true;
  for (const auto& [offset, c] : chunks_)
    if (c.free) drop_pages(base_ + offset, c.size);
  for (auto& [size, p] : heap_free_) {
    std::free(p);
    heap_held_ -= size;
  }
  heap_free_.clear();
}

std::string PoolAllocator::check() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t at = 0, free_listed = 0;
  bool prev_free = false;
  for (auto it = chunks_.begin(); it != chunks_.end(); ++it) {
    const auto& [offset, c] = *it;
    if (offset != at) return str_cat("chunk at ", offset, " should start at ", at);
    if (c.size == 0 || c.size % kTensorAlignment) return str_cat("chunk at ", offset, " has size ", c.size);
    if (c.free && prev_free) return str_cat("free chunks at ", offset, " and before it were not merged");
    const bool last = std::next(it) == chunks_.end();
    const bool listed = by_size_.count({c.size, offset}) > 0;
    if (c.free && !last && !listed) return str_cat("free chunk at ", offset, " is not in the size index");
    if ((!c.free || last) && listed) return str_cat("chunk at ", offset, " is in the size index but should not be");
    free_listed += listed;
    prev_free = c.free;
    at = offset + c.size;
  }
  if (at != top_) return str_cat("chunks end at ", at, ", top is ", top_);
  if (free_listed != by_size_.size()) return "the size index holds chunks that do not exist";
  if (top_ > committed_ || committed_ > reserved_) return "top, committed and reserved out of order";
  return "";
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
