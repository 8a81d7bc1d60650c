// The egress ledger: counts per identity, RPC and kind, never a payload kind, and (opened on a
// state dir) durable across a restart, in a real SQLite file.
#include "app/agent/audit/egress_ledger.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace sextant::agent {
namespace {

namespace fs = std::filesystem;

fs::path Scratch(const std::string& name) {
  auto dir =
      fs::temp_directory_path() / ("sextant-egress-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(EgressLedger, CountsByIdentityRpcAndKindAndRefusesPayload) {
  EgressLedger ledger;
  EXPECT_TRUE(
      ledger.Record("spiffe://x/vendor/op", "vendor-operator", "GetInventory", "telemetry", 100));
  EXPECT_TRUE(
      ledger.Record("spiffe://x/vendor/op", "vendor-operator", "GetInventory", "telemetry", 50));
  EXPECT_TRUE(
      ledger.Record("spiffe://x/customer/admin", "customer-admin", "GetEgressLedger", "audit", 7));
  EXPECT_FALSE(ledger.Record("spiffe://x/vendor/op", "vendor-operator", "X", "payload", 1));
  EXPECT_FALSE(ledger.Record("spiffe://x/vendor/op", "vendor-operator", "X", "prompts", 1));
  const auto vendor = ledger.VendorBytesByKind();
  EXPECT_EQ(vendor.at("telemetry"), 150);
  EXPECT_EQ(vendor.at("audit"), 0);  // the customer's bytes are not the vendor's
  EXPECT_EQ(vendor.at("payload"), 0);
  ASSERT_EQ(ledger.Rows().size(), 2u);
}

TEST(EgressLedger, OpenedOnAStateDirSurvivesARestart) {
  const fs::path dir = Scratch("durable");
  int64_t since = 0;
  {
    auto ledger = EgressLedger::Open(dir);
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    since = (*ledger)->since_unix_ms();
    EXPECT_TRUE((*ledger)->Record("spiffe://x/vendor/op", "vendor-operator", "WatchMetrics",
                                  "telemetry", 300));
    EXPECT_TRUE((*ledger)->Record("spiffe://x/vendor/op", "vendor-operator", "WatchMetrics",
                                  "telemetry", 200));
    EXPECT_TRUE((*ledger)->Record("spiffe://x/vendor/op", "vendor-operator", "RunValidation",
                                  "validation-digest", 90));
    EXPECT_TRUE((*ledger)->persistence_status().ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto again = EgressLedger::Open(dir);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->since_unix_ms(), since) << "the ledger counts since its first start";
  auto vendor = (*again)->VendorBytesByKind();
  EXPECT_EQ(vendor.at("telemetry"), 500);
  EXPECT_EQ(vendor.at("validation-digest"), 90);
  EXPECT_EQ(vendor.at("payload"), 0);
  for (const auto& row : (*again)->Rows()) {
    if (row.rpc == "WatchMetrics") {
      EXPECT_EQ(row.messages, 2);
      EXPECT_EQ(row.role, "vendor-operator");
      EXPECT_EQ(row.identity, "spiffe://x/vendor/op");
    }
  }
  // Counting goes on from the restored totals.
  EXPECT_TRUE(
      (*again)->Record("spiffe://x/vendor/op", "vendor-operator", "WatchMetrics", "telemetry", 1));
  EXPECT_EQ((*again)->VendorBytesByKind().at("telemetry"), 501);

  // The file is a real SQLite database with the committed rows (read by another connection).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "egress.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT SUM(bytes) FROM egress WHERE kind = 'telemetry'", -1,
                               &st, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(st, 0), 501);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(EgressLedger, OpenFailsClearlyWhenTheDirIsMissing) {
  auto ledger = EgressLedger::Open(Scratch("missing") / "no" / "such" / "dir");
  EXPECT_FALSE(ledger.ok());
}

}  // namespace
}  // namespace sextant::agent
