// API keys: shown once, stored as a hash only, verified in constant time, scoped to a
// deployment, revocable, and seen by a running agent when another process changes them.
#include "app/agent/state/api_keys.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/base/sha256.h"

namespace sextant::agent {
namespace {

namespace fs = std::filesystem;

class ApiKeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sextant-apikeys-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto s = ApiKeyStore::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  // Every byte of the store's files (database, WAL).
  std::string FileBytes() {
    std::string all;
    for (const auto& e : fs::directory_iterator(dir_)) {
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      all += ss.str();
    }
    return all;
  }

  // Polls `check` for up to two seconds.
  template <typename F>
  bool Eventually(F check) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (std::chrono::steady_clock::now() < end) {
      if (check()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return check();
  }

  fs::path dir_;
  std::unique_ptr<ApiKeyStore> store_;
};

TEST_F(ApiKeyStoreTest, AKeyIsShownOnceAndOnlyItsHashIsStored) {
  auto key = store_->Add("chat-app", "", "local:root");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->rfind(kApiKeyPrefix, 0), 0u) << *key;
  EXPECT_EQ(key->size(), std::string(kApiKeyPrefix).size() + 43);  // 32 bytes, base64url
  auto other = store_->Add("batch-app", "", "local:root");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*key, *other);

  const std::string bytes = FileBytes();
  EXPECT_EQ(bytes.find(*key), std::string::npos) << "the key itself is in the store's files";
  EXPECT_EQ(bytes.find(key->substr(12)), std::string::npos);
  EXPECT_NE(bytes.find(Sha256Hex(*key)), std::string::npos);

  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].name, "chat-app");
  EXPECT_EQ((*list)[1].prefix, key->substr(0, std::string(kApiKeyPrefix).size() + 4));
  EXPECT_EQ((*list)[1].created_by, "local:root");
  EXPECT_FALSE((*list)[1].revoked_at_unix_ms.has_value());
}

TEST_F(ApiKeyStoreTest, VerifyAcceptsExactlyTheActiveKeys) {
  auto key = store_->Add("chat-app", "", "local:root");
  ASSERT_TRUE(key.ok());
  auto who = store_->Verify(*key);
  ASSERT_TRUE(who.has_value());
  EXPECT_EQ(who->name, "chat-app");
  EXPECT_EQ(who->AuditIdentity(), "apikey:chat-app");
  EXPECT_TRUE(who->Allows("anything"));

  std::string wrong = *key;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(store_->Verify(wrong).has_value());
  EXPECT_FALSE(store_->Verify(key->substr(0, key->size() - 1)).has_value());
  EXPECT_FALSE(store_->Verify(*key + "x").has_value());
  EXPECT_FALSE(store_->Verify("").has_value());
  EXPECT_FALSE(store_->Verify(Sha256Hex(*key)).has_value());  // the stored hash is not a key
  EXPECT_FALSE(store_->Verify(std::string(100000, 'a')).has_value());
}

TEST_F(ApiKeyStoreTest, AScopedKeyAllowsOneDeployment) {
  auto key = store_->Add("support-bot", "stories", "local:root");
  ASSERT_TRUE(key.ok());
  auto who = store_->Verify(*key);
  ASSERT_TRUE(who.has_value());
  EXPECT_EQ(who->deployment, "stories");
  EXPECT_TRUE(who->Allows("stories"));
  EXPECT_FALSE(who->Allows("other"));
  EXPECT_EQ(store_->Add("bad", "Not_A_Deployment", "x").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ApiKeyStoreTest, NamesAreCheckedAndUnique) {
  ASSERT_TRUE(store_->Add("app", "", "x").ok());
  auto again = store_->Add("app", "", "x");
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("'app'"), std::string::npos);
  for (const char* bad : {"", "App", "-app", "a b", "app\n", "app;drop"}) {
    auto r = store_->Add(bad, "", "x");
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  const Status s = ValidateApiKeyName("ok-name_2.x");
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_NE(ValidateApiKeyName("bad/name").message().find("character 4"), std::string::npos);
}

TEST_F(ApiKeyStoreTest, ARevokedKeyStopsWorkingAtOnce) {
  auto key = store_->Add("app", "", "x");
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(store_->Verify(*key).has_value());
  ASSERT_TRUE(store_->Revoke("app").ok());
  EXPECT_FALSE(store_->Verify(*key).has_value());
  EXPECT_EQ(store_->Revoke("app").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Revoke("nobody").code(), StatusCode::kNotFound);
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_TRUE((*list)[0].revoked_at_unix_ms.has_value());
  EXPECT_EQ(store_->active_keys(), 0u);
  // The name stays taken.
  EXPECT_EQ(store_->Add("app", "", "x").status().code(), StatusCode::kAlreadyExists);
}

TEST_F(ApiKeyStoreTest, ARunningAgentSeesKeysAddedAndRevokedByAnotherProcess) {
  // store_ plays the agent; `cli` plays `sextant-agent apikeys` (its own connection).
  auto cli = ApiKeyStore::Open(dir_);
  ASSERT_TRUE(cli.ok());
  auto key = (*cli)->Add("late-app", "", "local:root");
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(Eventually([&] { return store_->Verify(*key).has_value(); }));
  ASSERT_TRUE((*cli)->Revoke("late-app").ok());
  EXPECT_TRUE(Eventually([&] { return !store_->Verify(*key).has_value(); }));
  // And the agent reopened later loads the state as it is.
  store_.reset();
  auto reopened = ApiKeyStore::Open(dir_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE((*reopened)->Verify(*key).has_value());
}

}  // namespace
}  // namespace sextant::agent
