// KvBlockPool: blocks are handed out until none is left, published blocks are found and shared,
// cached blocks are evicted least recently released first and held ones never, chain hashes
// separate partitions and prefixes.
#include "engine/serve/kv_block_pool.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace sextant::serve {
namespace {

using Hash = KvBlockPool::Hash;

std::vector<int32_t> Tokens(int first, int n = 16) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(first + i);
  return t;
}

Hash H(int first, std::string_view partition = "") {
  return KvBlockPool::ChainHash(KvBlockPool::PartitionRoot(partition), Tokens(first));
}

TEST(KvBlockPool, HandsOutEveryBlockOnceThenNone) {
  KvBlockPool pool(4, 16, true);
  std::set<int32_t> got;
  for (int i = 0; i < 4; ++i) got.insert(pool.Allocate());
  EXPECT_EQ(got, (std::set<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(pool.Allocate(), -1);
  EXPECT_EQ(pool.held_blocks(), 4);
  EXPECT_EQ(pool.available_blocks(), 0);
  pool.Release(2);  // unpublished: free again
  EXPECT_EQ(pool.free_blocks(), 1);
  EXPECT_EQ(pool.Allocate(), 2);
}

TEST(KvBlockPool, PublishedBlocksAreFoundSharedAndCached) {
  KvBlockPool pool(4, 16, true);
  const int32_t b = pool.Allocate();
  EXPECT_EQ(pool.Find(H(100)), -1);
  ASSERT_TRUE(pool.Publish(b, H(100)));
  EXPECT_EQ(pool.Find(H(100)), b);
  EXPECT_EQ(pool.Acquire(H(100)), b);  // a second sequence shares it
  EXPECT_EQ(pool.ref(b), 2);
  EXPECT_EQ(pool.Acquire(H(200)), -1);
  pool.Release(b);
  pool.Release(b);
  EXPECT_EQ(pool.held_blocks(), 0);
  EXPECT_EQ(pool.cached_blocks(), 1);  // kept for reuse
  EXPECT_EQ(pool.available_blocks(), 4);
  EXPECT_EQ(pool.Acquire(H(100)), b);  // found again after everyone released it
  EXPECT_EQ(pool.cached_blocks(), 0);
  EXPECT_EQ(pool.held_blocks(), 1);
}

TEST(KvBlockPool, EvictsTheLeastRecentlyReleasedCachedBlockFirst) {
  KvBlockPool pool(3, 16, true);
  const int32_t a = pool.Allocate(), b = pool.Allocate(), c = pool.Allocate();
  ASSERT_TRUE(pool.Publish(a, H(1)));
  ASSERT_TRUE(pool.Publish(b, H(2)));
  ASSERT_TRUE(pool.Publish(c, H(3)));
  pool.Release(b);
  pool.Release(a);
  pool.Release(c);
  EXPECT_EQ(pool.Allocate(), b);  // released first
  EXPECT_EQ(pool.Find(H(2)), -1);
  EXPECT_EQ(pool.Find(H(1)), a);
  // Reusing a makes it the most recently released: c goes next.
  EXPECT_EQ(pool.Acquire(H(1)), a);
  pool.Release(a);
  EXPECT_EQ(pool.Allocate(), c);
  EXPECT_EQ(pool.Find(H(3)), -1);
  EXPECT_EQ(pool.Find(H(1)), a);
  EXPECT_EQ(pool.evictions(), 2u);
}

TEST(KvBlockPool, HeldBlocksAreNeverEvicted) {
  KvBlockPool pool(2, 16, true);
  const int32_t held = pool.Allocate(), other = pool.Allocate();
  ASSERT_TRUE(pool.Publish(held, H(1)));
  ASSERT_TRUE(pool.Publish(other, H(2)));
  pool.Release(other);
  EXPECT_EQ(pool.Allocate(), other);
  EXPECT_EQ(pool.Allocate(), -1);  // the held block is not taken
  EXPECT_EQ(pool.Find(H(1)), held);
}

TEST(KvBlockPool, ASecondBlockWithTheSameHashStaysPrivate) {
  KvBlockPool pool(3, 16, true);
  const int32_t first = pool.Allocate(), second = pool.Allocate();
  ASSERT_TRUE(pool.Publish(first, H(7)));
  EXPECT_FALSE(pool.Publish(second, H(7)));
  EXPECT_TRUE(pool.Publish(first, H(7)));  // already carries it
  pool.Release(second);
  EXPECT_EQ(pool.free_blocks(), 2);  // not cached
  EXPECT_EQ(pool.Find(H(7)), first);
}

TEST(KvBlockPool, WithCachingOffNothingIsPublished) {
  KvBlockPool pool(2, 16, false);
  const int32_t b = pool.Allocate();
  EXPECT_FALSE(pool.Publish(b, H(1)));
  pool.MarkInFlight(H(1), 5);
  EXPECT_EQ(pool.InFlightOwner(H(1)), 0u);
  pool.Release(b);
  EXPECT_EQ(pool.Find(H(1)), -1);
  EXPECT_EQ(pool.cached_blocks(), 0);
  EXPECT_EQ(pool.free_blocks(), 2);
}

TEST(KvBlockPool, ChainHashesSeparatePartitionsAndPrefixes) {
  const Hash root = KvBlockPool::PartitionRoot("");
  EXPECT_EQ(KvBlockPool::ChainHash(root, Tokens(5)), H(5));  // deterministic
  EXPECT_NE(H(5, "tenant-a"), H(5, "tenant-b"));
  EXPECT_NE(H(5, "tenant-a"), H(5));
  EXPECT_NE(KvBlockPool::PartitionRoot("a"), KvBlockPool::PartitionRoot("a "));
  // The same block after different first blocks: different hashes.
  EXPECT_NE(KvBlockPool::ChainHash(H(1), Tokens(50)), KvBlockPool::ChainHash(H(2), Tokens(50)));
  // One token changed anywhere in the block: a different hash.
  std::vector<int32_t> t = Tokens(50);
  t[15] += 1;
  EXPECT_NE(KvBlockPool::ChainHash(root, t), H(50));
}

TEST(KvBlockPool, InFlightMarksBelongToTheirOwner) {
  KvBlockPool pool(2, 16, true);
  pool.MarkInFlight(H(1), 7);
  pool.MarkInFlight(H(1), 8);  // already marked: the first owner keeps it
  EXPECT_EQ(pool.InFlightOwner(H(1)), 7u);
  pool.ClearInFlight(H(1), 8);
  EXPECT_EQ(pool.InFlightOwner(H(1)), 7u);
  const int32_t b = pool.Allocate();
  ASSERT_TRUE(pool.Publish(b, H(1)));  // computed: no longer in flight
  EXPECT_EQ(pool.InFlightOwner(H(1)), 0u);
  pool.MarkInFlight(H(1), 9);  // published hashes are not marked
  EXPECT_EQ(pool.InFlightOwner(H(1)), 0u);
}

}  // namespace
}  // namespace sextant::serve
