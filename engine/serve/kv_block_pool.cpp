#include "engine/serve/kv_block_pool.h"

#include "engine/base/sha256.h"

namespace sextant::serve {

KvBlockPool::KvBlockPool(int32_t blocks, int32_t block_tokens, bool prefix_caching)
    : block_tokens_(block_tokens), prefix_caching_(prefix_caching) {
  blocks_.resize(static_cast<size_t>(blocks));
  free_.reserve(static_cast<size_t>(blocks));
  for (int32_t b = blocks - 1; b >= 0; --b) free_.push_back(b);
}

KvBlockPool::Hash KvBlockPool::PartitionRoot(std::string_view partition) {
  // Domain-separated from ChainHash (whose input is 32 + 4k bytes) by its prefix.
  static constexpr char kDomain[] = "sextant kv prefix root v1";
  Sha256 h;
  h.Update(reinterpret_cast<const uint8_t*>(kDomain), sizeof(kDomain));  // with its NUL
  const uint64_t n = partition.size();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  h.Update(len, sizeof(len));
  h.Update(reinterpret_cast<const uint8_t*>(partition.data()), partition.size());
  return h.Final();
}

KvBlockPool::Hash KvBlockPool::ChainHash(const Hash& parent, std::span<const int32_t> tokens) {
  Sha256 h;
  h.Update(parent.data(), parent.size());
  for (int32_t t : tokens) {
    const uint32_t u = static_cast<uint32_t>(t);
    const uint8_t le[4] = {static_cast<uint8_t>(u), static_cast<uint8_t>(u >> 8),
                           static_cast<uint8_t>(u >> 16), static_cast<uint8_t>(u >> 24)};
    h.Update(le, sizeof(le));
  }
  return h.Final();
}

int32_t KvBlockPool::Find(const Hash& h) const {
  auto it = index_.find(h);
  return it == index_.end() ? -1 : it->second;
}

int32_t KvBlockPool::Acquire(const Hash& h) {
  const int32_t b = Find(h);
  if (b < 0) return -1;
  Block& blk = blocks_[static_cast<size_t>(b)];
  if (blk.ref == 0) {
    lru_.erase(blk.lru_pos);
    ++held_;
  }
  ++blk.ref;
  return b;
}

int32_t KvBlockPool::Allocate() {
  int32_t b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    Block& evicted = blocks_[static_cast<size_t>(b)];
    index_.erase(evicted.hash);
    evicted.published = false;
    ++evictions_;
  } else {
    return -1;
  }
  blocks_[static_cast<size_t>(b)].ref = 1;
  ++held_;
  return b;
}

void KvBlockPool::Release(int32_t block) {
  Block& blk = blocks_[static_cast<size_t>(block)];
  if (--blk.ref > 0) return;
  --held_;
  if (blk.published) {
    blk.lru_pos = lru_.insert(lru_.end(), block);
  } else {
    free_.push_back(block);
  }
}

bool KvBlockPool::Publish(int32_t block, const Hash& h) {
  Block& blk = blocks_[static_cast<size_t>(block)];
  if (blk.published) return blk.hash == h;
  if (!prefix_caching_ || index_.count(h) != 0) return false;
  blk.published = true;
  blk.hash = h;
  index_.emplace(h, block);
  in_flight_.erase(h);
  return true;
}

void KvBlockPool::MarkInFlight(const Hash& h, uint64_t owner) {
  if (!prefix_caching_ || index_.count(h) != 0) return;
  in_flight_.emplace(h, owner);
}

uint64_t KvBlockPool::InFlightOwner(const Hash& h) const {
  auto it = in_flight_.find(h);
  return it == in_flight_.end() ? 0 : it->second;
}

void KvBlockPool::ClearInFlight(const Hash& h, uint64_t owner) {
  auto it = in_flight_.find(h);
  if (it != in_flight_.end() && it->second == owner) in_flight_.erase(it);
}

}  // namespace sextant::serve
