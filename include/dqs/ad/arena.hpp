// Bump allocator for the autodiff tape: allocation is a pointer increment inside 64-byte-aligned
// blocks; reset() drops everything at once and keeps the capacity (merged into one block), so a
// repeated gradient of the same shape allocates nothing from the system after the first.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace dqs::ad {

class Arena {
 public:
  static constexpr std::size_t alignment = 64;

  explicit Arena(std::size_t initial_bytes = 0) {
    if (initial_bytes > 0) blocks_.push_back(make_block(initial_bytes));
  }

  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&&) noexcept = default;
  Arena& operator=(Arena&&) noexcept = default;

  // `bytes` of uninitialised storage aligned to `align` (a power of two ≤ 64), valid until reset().
  void* allocate(std::size_t bytes, std::size_t align = alignment) {
    for (;;) {
      if (current_ < blocks_.size()) {
        const std::size_t start = (offset_ + align - 1) & ~(align - 1);
        if (start + bytes <= blocks_[current_].size) {
          offset_ = start + bytes;
          return blocks_[current_].data.get() + start;
        }
        if (current_ + 1 < blocks_.size()) {  // a later block kept from before a reset
          ++current_;
          offset_ = 0;
          continue;
        }
      }
      // Geometric growth keeps the number of blocks logarithmic in the peak use.
      const std::size_t last = blocks_.empty() ? 0 : blocks_.back().size;
      blocks_.push_back(make_block(std::max({bytes + alignment, 2 * last, min_block_bytes})));
      current_ = blocks_.size() - 1;
      offset_ = 0;
    }
  }

  template <class T>
  T* allocate_array(std::size_t n) {
    return static_cast<T*>(allocate(n * sizeof(T), std::max(alignof(T), alignment)));
  }

  // Forgets every allocation. Several blocks are merged into one of their total size, so the next
  // pass of the same size fits without growing.
  void reset() {
    if (blocks_.size() > 1) {
      const std::size_t total = capacity();
      blocks_.clear();
      blocks_.push_back(make_block(total));
    }
    current_ = 0;
    offset_ = 0;
  }

  // Bytes held from the system.
  std::size_t capacity() const {
    std::size_t total = 0;
    for (const auto& b : blocks_) total += b.size;
    return total;
  }
  std::size_t num_blocks() const { return blocks_.size(); }

 private:
  static constexpr std::size_t min_block_bytes = std::size_t(1) << 16;

  struct AlignedDelete {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t(alignment)); }
  };
  struct Block {
    std::unique_ptr<std::byte[], AlignedDelete> data;
    std::size_t size = 0;
  };

  static Block make_block(std::size_t bytes) {
    bytes = (bytes + alignment - 1) & ~(alignment - 1);
    auto* p = static_cast<std::byte*>(::operator new[](bytes, std::align_val_t(alignment)));
    return Block{std::unique_ptr<std::byte[], AlignedDelete>(p), bytes};
  }

  std::vector<Block> blocks_;
  std::size_t current_ = 0;
  std::size_t offset_ = 0;
};

}  // namespace dqs::ad
