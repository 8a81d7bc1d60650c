#include "app/common/sqlite/sqlite_db.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sextant::sqlite {
namespace {

namespace fs = std::filesystem;

class SqliteDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sqlite_db_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// The one mapping from SQLite's codes to Status codes, as the header documents it.
TEST(StatusFromSqlite, MapsEachClassOfFailureOnce) {
  EXPECT_EQ(StatusFromSqlite(SQLITE_BUSY, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromSqlite(SQLITE_LOCKED, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromSqlite(SQLITE_IOERR_WRITE, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromSqlite(SQLITE_FULL, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromSqlite(SQLITE_CANTOPEN, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromSqlite(SQLITE_READONLY, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromSqlite(SQLITE_CORRUPT, "x").code(), StatusCode::kDataLoss);
  EXPECT_EQ(StatusFromSqlite(SQLITE_NOTADB, "x").code(), StatusCode::kDataLoss);
  EXPECT_EQ(StatusFromSqlite(SQLITE_CONSTRAINT_UNIQUE, "x").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusFromSqlite(SQLITE_CONSTRAINT_PRIMARYKEY, "x").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusFromSqlite(SQLITE_CONSTRAINT_NOTNULL, "x").code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusFromSqlite(SQLITE_CONSTRAINT_TRIGGER, "x").code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusFromSqlite(SQLITE_INTERRUPT, "x").code(), StatusCode::kCancelled);
  EXPECT_EQ(StatusFromSqlite(SQLITE_ERROR, "x").code(), StatusCode::kInternal);
  EXPECT_EQ(StatusFromSqlite(SQLITE_MISUSE, "x").code(), StatusCode::kInternal);
  EXPECT_EQ(StatusFromSqlite(SQLITE_ERROR, "what failed").message(), "what failed");
}

TEST_F(SqliteDbTest, RealFailuresCarryTheirMappedCodeAndNameTheFile) {
  SqliteOpenOptions quick;
  quick.busy_timeout_ms = 50;
  auto db = SqliteDb::Open(dir_ / "a.db", quick);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT NOT NULL)").ok());
  // A statement that does not compile is a defect of the program: INTERNAL, naming the file.
  auto bad = (*db)->Prepare("SELECT nope FROM t");
  EXPECT_EQ(bad.status().code(), StatusCode::kInternal);
  EXPECT_NE(bad.status().message().find("a.db"), std::string::npos) << bad.status().message();
  // Constraints.
  ASSERT_TRUE((*db)->Exec("INSERT INTO t VALUES('a', '1')").ok());
  auto dup = (*db)->Prepare("INSERT INTO t VALUES(?, ?)");
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(dup->Bind(1, "a").Bind(2, "2").Run().code(), StatusCode::kAlreadyExists);
  // Run() resets the statement: it runs again with new bindings.
  EXPECT_TRUE(dup->Bind(1, "b").Bind(2, "2").Run().ok());
  EXPECT_EQ((*db)->Exec("INSERT INTO t VALUES('c', NULL)").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*db)->Changes(), 0);
  // Another connection holding the write lock past the busy timeout: UNAVAILABLE.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "a.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto second = SqliteDb::Open(dir_ / "b.db", quick);  // a file of its own opens fine
  ASSERT_TRUE(second.ok());
  auto busy = (*db)->Exec("INSERT INTO t VALUES('d', '4')");
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.ToString();
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
}

TEST_F(SqliteDbTest, AFileThatIsNotADatabaseIsDataLoss) {
  {
    std::ofstream f(dir_ / "junk.db", std::ios::binary);
    f << std::string(4096, 'x');
  }
  auto db = SqliteDb::Open(dir_ / "junk.db");
  // Opening reads the header lazily; the first statement finds the damage.
  Status s = db.ok() ? (*db)->Exec("SELECT count(*) FROM sqlite_master") : db.status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
}

TEST_F(SqliteDbTest, IntegrityCheckPassesOnASoundFile) {
  auto db = SqliteDb::Open(dir_ / "a.db");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t(x); INSERT INTO t VALUES(1.5)").ok());
  auto q = (*db)->Prepare("SELECT x FROM t");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*q->Step());
  EXPECT_DOUBLE_EQ(q->Real(0), 1.5);
  EXPECT_TRUE(CheckIntegrity(**db).ok());
}

}  // namespace
}  // namespace sextant::sqlite
