#include "app/agent/replicas/replica_manager.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>

#include "engine/tokenizer/tokenizer.h"

namespace sextant::agent {
namespace {

namespace fs = std::filesystem;

fs::path SharedModel() { return fs::path(SEXTANT_SHARED_DIR) / "models" / "stories260K.gguf"; }

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sextant-replicas-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

DeploymentTarget Target(const std::string& name, const std::string& uri, const std::string& sha,
                        int64_t generation = 1) {
  DeploymentTarget t;
  t.name = name;
  t.generation = generation;
  t.model_uri = uri;
  t.model_sha256 = sha;
  t.engine.max_batch = 4;
  t.engine.threads = 1;
  t.replicas = 1;
  return t;
}

TEST(ReplicaManagerStore, ResolvesUrisInsideTheStoreOnly) {
  const fs::path store = "/srv/models";
  auto rel = ReplicaManager::ResolveModelPath(store, "llama/7b.gguf");
  ASSERT_TRUE(rel.ok());
  EXPECT_EQ(rel.value(), "/srv/models/llama/7b.gguf");
  auto s3 = ReplicaManager::ResolveModelPath(store, "s3://bucket/some/dir/x.gguf");
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(s3.value(), "/srv/models/x.gguf");
  auto file = ReplicaManager::ResolveModelPath("file:///srv/models", "file:///elsewhere/y.gguf");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file.value(), "/srv/models/y.gguf");
  auto bare = ReplicaManager::ResolveModelPath(store, "file://stories260K.gguf");
  ASSERT_TRUE(bare.ok()) << bare.status().message();
  EXPECT_EQ(bare.value(), "/srv/models/stories260K.gguf");
  auto abs = ReplicaManager::ResolveModelPath(store, "/etc/passwd");
  ASSERT_TRUE(abs.ok());
  EXPECT_EQ(abs.value(), "/srv/models/passwd");  // only the name counts: never outside
  auto up = ReplicaManager::ResolveModelPath(store, "../../etc/shadow");
  ASSERT_FALSE(up.ok());
  EXPECT_NE(up.status().message().find("leaves the model store"), std::string::npos);
  EXPECT_FALSE(ReplicaManager::ResolveModelPath(store, "").ok());
  EXPECT_FALSE(ReplicaManager::ResolveModelPath(store, "s3://bucket/").ok());
  EXPECT_FALSE(ReplicaManager::ResolveModelPath("", "x.gguf").ok());
}

TEST(ReplicaManagerStore, Sha256OfFileMatchesAKnownDigest) {
  TempDir dir;
  std::ofstream(dir.path() / "abc") << "abc";
  auto sha = Sha256OfFile(dir.path() / "abc");
  ASSERT_TRUE(sha.ok());
  EXPECT_EQ(sha.value(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256OfFile(dir.path() / "missing").status().code(), StatusCode::kNotFound);
}

TEST(ReplicaManager, MissingModelFileMarksTheDeploymentFailed) {
  TempDir store;
  ReplicaManager mgr({.model_store = store.path()}, nullptr);
  mgr.Upsert(Target("absent", "nothing-here.gguf", std::string(64, 'a')));
  auto view = mgr.WaitSettled("absent", std::chrono::seconds(20));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->phase, agent::DeploymentPhase::kFailed);
  EXPECT_NE(view->reason.find("not in the model store"), std::string::npos) << view->reason;
  EXPECT_EQ(mgr.Acquire("absent").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(mgr.Acquire("other").status().code(), StatusCode::kNotFound);
  std::string why;
  EXPECT_FALSE(mgr.AllReady(&why));
  EXPECT_NE(why.find("absent"), std::string::npos);
}

class ReplicaManagerModel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(SharedModel())) {
      GTEST_SKIP() << "needs " << SharedModel() << " (the shared models folder is absent)";
    }
    fs::copy_file(SharedModel(), store_.path() / "stories260K.gguf");
    auto sha = Sha256OfFile(store_.path() / "stories260K.gguf");
    ASSERT_TRUE(sha.ok());
    sha_ = sha.value();
  }
  TempDir store_;
  std::string sha_;
};

TEST_F(ReplicaManagerModel, Sha256MismatchFailsAndServesNothing) {
  agent::Registry registry;
  ServingMetrics serving(registry);
  ReplicaManager mgr({.model_store = store_.path()}, &serving);
  std::string wrong = sha_;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  mgr.Upsert(Target("tampered", "s3://vendor-bucket/stories260K.gguf", wrong));
  auto view = mgr.WaitSettled("tampered", std::chrono::seconds(30));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->phase, agent::DeploymentPhase::kFailed);
  EXPECT_NE(view->reason.find("sha256 mismatch"), std::string::npos) << view->reason;
  EXPECT_NE(view->reason.find(wrong), std::string::npos);
  EXPECT_NE(view->reason.find(sha_), std::string::npos);
  EXPECT_EQ(view->replicas_ready, 0);
  auto acquired = mgr.Acquire("tampered");
  ASSERT_FALSE(acquired.ok());
  EXPECT_EQ(acquired.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(acquired.status().message().find("sha256 mismatch"), std::string::npos);
  auto status = mgr.StatusOf("tampered");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->phase, agent::DeploymentPhase::kFailed);
}

TEST_F(ReplicaManagerModel, LoadsVerifiedModelServesAndStopsServingABadNewGeneration) {
  agent::Registry registry;
  ServingMetrics serving(registry);
  ReplicaManager mgr({.model_store = store_.path(), .drain_grace = std::chrono::seconds(1)},
                     &serving);
  DeploymentTarget t = Target("stories", "stories260K.gguf", "sha256:" + sha_);
  t.replicas = 2;
  mgr.Upsert(t);
  auto view = mgr.WaitSettled("stories", std::chrono::seconds(60));
  ASSERT_TRUE(view.has_value());
  ASSERT_EQ(view->phase, agent::DeploymentPhase::kReady) << view->reason;
  EXPECT_EQ(view->replicas_ready, 2);
  EXPECT_EQ(view->serving_generation, 1);
  EXPECT_TRUE(mgr.AllReady());

  auto replica = mgr.Acquire("stories");
  ASSERT_TRUE(replica.ok()) << replica.status().ToString();
  serve::GenerateRequest req;
  req.prompt = replica.value()->model().tokenizer().Encode("Once upon a time", true);
  req.max_tokens = 8;
  req.sampling.temperature = 0;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int tokens = 0;
  auto id = replica.value()->scheduler().Submit(
      req,
      [&](int32_t) {
        ++tokens;
        return true;
      },
      [&](Result<serve::GenerateStats> r) {
        EXPECT_TRUE(r.ok()) << r.status().ToString();
        std::lock_guard<std::mutex> lock(mu);
        done = true;
        cv.notify_all();
      });
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return done; }));
  }
  EXPECT_GT(tokens, 0);

  // Same generation again: nothing changes.
  mgr.Upsert(t);
  EXPECT_EQ(mgr.Get("stories")->serving_generation, 1);

  // A new generation whose digest does not match: Failed, and the old replicas stop serving.
  DeploymentTarget bad = t;
  bad.generation = 2;
  bad.model_sha256 = std::string(64, 'f');
  mgr.Upsert(bad);
  view = mgr.WaitSettled("stories", std::chrono::seconds(30));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->phase, agent::DeploymentPhase::kFailed);
  EXPECT_EQ(view->replicas_ready, 0);
  EXPECT_FALSE(mgr.Acquire("stories").ok());

  // Metrics agree with what the manager sees.
  auto m = mgr.Metrics();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].name, "stories");
  EXPECT_EQ(m[0].replicas_ready, 0);

  mgr.Remove("stories");
  EXPECT_EQ(mgr.Acquire("stories").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(mgr.AllReady());
}

// The verified-model cache is not fooled by a rewrite that keeps the size and puts the
// modification time back: a new generation of the same digest hashes the file again and fails.
TEST_F(ReplicaManagerModel, AModelRewrittenInPlaceWithItsOldTimeIsHashedAgain) {
  agent::Registry registry;
  ServingMetrics serving(registry);
  ReplicaManager mgr({.model_store = store_.path(), .drain_grace = std::chrono::seconds(1)},
                     &serving);
  DeploymentTarget t = Target("stories", "stories260K.gguf", "sha256:" + sha_);
  mgr.Upsert(t);
  auto view = mgr.WaitSettled("stories", std::chrono::seconds(60));
  ASSERT_TRUE(view.has_value());
  ASSERT_EQ(view->phase, agent::DeploymentPhase::kReady) << view->reason;

  const fs::path file = store_.path() / "stories260K.gguf";
  const auto mtime = fs::last_write_time(file);
  const auto size = fs::file_size(file);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char last = static_cast<char>(f.get());
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(last ^ 0x01));
  }
  fs::last_write_time(file, mtime);
  ASSERT_EQ(fs::file_size(file), size);

  DeploymentTarget again = t;
  again.generation = 2;
  mgr.Upsert(again);
  view = mgr.WaitSettled("stories", std::chrono::seconds(60));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->phase, agent::DeploymentPhase::kFailed);
  EXPECT_NE(view->reason.find("sha256 mismatch"), std::string::npos) << view->reason;
  EXPECT_FALSE(mgr.Acquire("stories").ok());
}

TEST_F(ReplicaManagerModel, ReconcileAppliesDesiredRecords) {
  ReplicaManager mgr({.model_store = store_.path()}, nullptr);
  agent::DeploymentRecord rec;
  rec.name = "from-record";
  rec.generation = 3;
  rec.spec_json = "{not a spec";
  mgr.ApplyRecord(rec);
  auto view = mgr.WaitSettled("from-record", std::chrono::seconds(5));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->phase, agent::DeploymentPhase::kFailed);
  EXPECT_NE(view->reason.find("spec"), std::string::npos) << view->reason;

  mgr.Reconcile({Target("a", "stories260K.gguf", sha_)});
  EXPECT_FALSE(mgr.Get("from-record").has_value());
  view = mgr.WaitSettled("a", std::chrono::seconds(60));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->phase, agent::DeploymentPhase::kReady) << view->reason;
}

}  // namespace
}  // namespace sextant::agent
