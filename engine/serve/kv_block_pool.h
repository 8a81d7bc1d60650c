// The blocks of one ModelContext's paged KV pool (engine/model/model.h), handed out to the
// sequences of one BatchScheduler, with prefix caching.
//
// Prefix caching: a full block (kv_block_tokens positions) whose keys and values are computed is
// published under a chain hash: SHA-256 of its parent's hash and its tokens, the chain starting at
// the hash of a cache partition. Equal hashes therefore mean equal tokens at every position
// before and in the block, in the same partition; a later sequence whose tokens start the same
// way acquires the published blocks instead of computing them again. Because the engine computes
// each position's keys and values from the tokens up to it alone (engine/backends/backend.h), a
// reused block holds exactly the bits the sequence would have computed.
//
// A block is in one of three states:
//   free:   holds nothing anyone can find (never written, or its contents were dropped);
//   held:   referenced by one or more sequences (ref > 0); a published block may be held by many
//           sequences at once, an unpublished one only by the sequence writing it;
//   cached: published and held by no sequence: kept for reuse until evicted, least recently
//           released first.
// Allocate() takes a free block, else evicts the least recently released cached block. Callers
// release a sequence's blocks last to first, so the tail of a prefix is evicted before its head.
//
// Isolation: a pool belongs to one scheduler (one deployment replica), so prefixes are never
// shared across deployments; the partition in the root hash keeps them apart within one (one
// tenant cannot time another's prompts).
//
// Invariants: (1) every block is in exactly one of free_, lru_ (cached) or held (ref > 0);
// (2) index_ maps a hash to the one published block carrying it, and a block is published iff
// it is in index_; (3) a cached block is published.
//
// Thread-safety: not thread-safe; the scheduler's worker thread owns it.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <list>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sextant::serve {

class KvBlockPool {
 public:
  using Hash = std::array<uint8_t, 32>;

  // `prefix_caching` false: Publish() never publishes, so nothing is ever found or cached.
  KvBlockPool(int32_t blocks, int32_t block_tokens, bool prefix_caching);

  // The hash that starts every chain of a cache partition ("" is the deployment-wide one).
  static Hash PartitionRoot(std::string_view partition);
  // The hash of a full block: its tokens after its parent's hash (the partition root for the
  // first block). REQUIRES: tokens.size() == block_tokens().
  static Hash ChainHash(const Hash& parent, std::span<const int32_t> tokens);

  int32_t blocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t block_tokens() const { return block_tokens_; }
  bool prefix_caching() const { return prefix_caching_; }

  // The published block with hash `h`, or -1. Does not change anything.
  int32_t Find(const Hash& h) const;
  // Takes a reference on the published block with hash `h` (a cached one becomes held); -1 when
  // no block carries it.
  int32_t Acquire(const Hash& h);
  // A block for the caller with one reference: a free block, else the least recently released
  // cached block, unpublished. -1 when every block is held.
  int32_t Allocate();
  // Drops one reference. At zero a published block becomes cached (the most recently
  // released), an unpublished one free. REQUIRES: the caller holds `block`.
  void Release(int32_t block);
  // Publishes a block the caller holds whose positions are all computed under hash `h`. False
  // (nothing changes) when caching is off or another block already carries `h`; true when
  // `block` carries it now (already published included).
  bool Publish(int32_t block, const Hash& h);

  // Marks `h` as being computed by the running sequence `owner` (until Publish of `h` or
  // ClearInFlight), so that a sequence that would reuse it can wait instead of computing it too.
  // Does nothing when caching is off or `h` is already marked.
  void MarkInFlight(const Hash& h, uint64_t owner);
  // The sequence computing `h`, or 0 when none.
  uint64_t InFlightOwner(const Hash& h) const;
  void ClearInFlight(const Hash& h, uint64_t owner);

  int32_t held_blocks() const { return held_; }                                // ref > 0
  int32_t cached_blocks() const { return static_cast<int32_t>(lru_.size()); }  // published, ref 0
  int32_t free_blocks() const { return static_cast<int32_t>(free_.size()); }
  // What Allocate() can hand out: free + cached.
  int32_t available_blocks() const { return free_blocks() + cached_blocks(); }
  int32_t ref(int32_t block) const { return blocks_[static_cast<size_t>(block)].ref; }
  uint64_t evictions() const { return evictions_; }

 private:
  struct HashHasher {
    size_t operator()(const Hash& h) const {
      size_t v;
      std::memcpy(&v, h.data(), sizeof(v));
      return v;
    }
  };
  struct Block {
    int32_t ref = 0;
    bool published = false;
    Hash hash{};
    std::list<int32_t>::iterator lru_pos;  // valid while cached
  };

  int32_t block_tokens_;
  bool prefix_caching_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;  // a stack: the lowest ids are handed out first
  std::list<int32_t> lru_;     // cached blocks, least recently released first
  std::unordered_map<Hash, int32_t, HashHasher> index_;
  std::unordered_map<Hash, uint64_t, HashHasher> in_flight_;
  int32_t held_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace sextant::serve
