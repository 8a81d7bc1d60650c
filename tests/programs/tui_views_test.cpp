// The terminal UI's data layer without a terminal: alerts derived from a real console store
// (SQLite in a temp dir), views and their column fitting, filtering, and the snapshot poller's
// promise that the UI thread never waits for a load.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "app/console/store/console_database.h"
#include "engine/base/time.h"
#include "ui/tui/console_snapshot.h"
#include "ui/tui/views.h"

namespace sextant::tui {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr console::TimeMs kDay = 86'400'000;

class TuiViewsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sextant-tuiviews-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto st = console::ConsoleDatabase::Open(dir_);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = std::move(st).value();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void AddTarget(const std::string& name, console::ConnState state, console::TimeMs since,
                 console::TimeMs last_seen, const std::string& error = "") {
    console::Target t;
    t.name = name;
    t.endpoint = "127.0.0.1:1";
    ASSERT_TRUE(store_->targets().Add(t).ok());
    console::TargetStatus s;
    s.target = name;
    s.state = state;
    s.since = since;
    s.last_seen = last_seen;
    s.error = error;
    s.identity = "spiffe://example.org/vendor/console";
    s.role = "vendor-operator";
    ASSERT_TRUE(store_->targets().SetStatus(s).ok());
  }

  fs::path dir_;
  std::unique_ptr<console::ConsoleDatabase> store_;
};

TEST_F(TuiViewsTest, AlertsSayWhatIsBrokenWhereAndSinceWhen) {
  const console::TimeMs now = console::NowMs();
  AddTarget("down", console::ConnState::kError, now - 60'000, now - 61'000, "connection refused");
  AddTarget("quiet", console::ConnState::kConnected, now - 600'000, now - 45'000);
  AddTarget("ok", console::ConnState::kConnected, now - 600'000, now - 1'000);
  console::Deployment d;
  d.target = "ok";
  d.name = "chat";
  d.replicas_desired = 2;
  ASSERT_TRUE(store_->telemetry().ReplaceDeployments("ok", {d}).ok());
  console::DeploymentSample smp;
  smp.target = "ok";
  smp.deployment = "chat";
  smp.ts = now - 500;
  smp.replicas_ready = 1;
  smp.replicas_desired = 2;
  ASSERT_TRUE(store_->telemetry().AppendSamples({}, {smp}).ok());
  // The agent's server certificate expires in 3 days (RFC 3339), and on "quiet" long from now.
  ASSERT_TRUE(store_->facts()
                  .Replace("ok", "", {{"tls.cert_expires_at", FormatRfc3339(now + 3 * kDay)}}, now)
                  .ok());
  ASSERT_TRUE(
      store_->facts()
          .Replace("quiet", "", {{"tls.cert_expires_at", FormatRfc3339(now + 300 * kDay)}}, now)
          .ok());

  SnapshotSources src;
  src.store = store_.get();
  src.stale_after_ms = 30'000;
  ConsoleSnapshot snap = LoadSnapshot(src, now, true, nullptr);
  ASSERT_TRUE(snap.error.empty()) << snap.error;
  EXPECT_EQ(snap.targets.size(), 3u);
  EXPECT_EQ(snap.targets_connected, 1);  // "quiet" is stale: its last report is 45 s old
  EXPECT_EQ(snap.identity, "spiffe://example.org/vendor/console");
  EXPECT_FALSE(snap.cost.available);  // no catalog given, and the snapshot says so
  EXPECT_FALSE(snap.cost.note.empty());

  std::map<std::string, const Alert*> by_kind;
  for (const auto& a : snap.alerts) by_kind[a.kind + " " + a.subject] = &a;
  ASSERT_EQ(snap.alerts.size(), 4u);
  ASSERT_TRUE(by_kind.count("unreachable down"));
  EXPECT_EQ(by_kind["unreachable down"]->severity, AlertSeverity::kCritical);
  EXPECT_EQ(by_kind["unreachable down"]->since, now - 60'000);
  EXPECT_NE(by_kind["unreachable down"]->message.find("connection refused"), std::string::npos);
  ASSERT_TRUE(by_kind.count("stale quiet"));
  EXPECT_EQ(by_kind["stale quiet"]->severity, AlertSeverity::kWarning);
  ASSERT_TRUE(by_kind.count("replicas ok/chat"));
  EXPECT_EQ(by_kind["replicas ok/chat"]->message, "1/2 replicas ready");
  ASSERT_TRUE(by_kind.count("certificate ok"));
  EXPECT_NE(by_kind["certificate ok"]->message.find("2 days left"), std::string::npos)
      << by_kind["certificate ok"]->message;
  // Critical first.
  EXPECT_EQ(snap.alerts.front().kind, "unreachable");

  // An alert whose start the store does not keep is dated when first seen, and keeps that date.
  const console::TimeMs first = by_kind["replicas ok/chat"]->since;
  ConsoleSnapshot later = LoadSnapshot(src, now + 5'000, false, &snap);
  for (const auto& a : later.alerts) {
    if (a.kind == "replicas") {
      EXPECT_EQ(a.since, first);
    }
  }
  // Once the replicas are back the alert clears.
  smp.ts = now + 6'000;
  smp.replicas_ready = 2;
  ASSERT_TRUE(store_->telemetry().AppendSamples({}, {smp}).ok());
  ConsoleSnapshot healed = LoadSnapshot(src, now + 7'000, false, &later);
  for (const auto& a : healed.alerts) EXPECT_NE(a.kind, "replicas");
  EXPECT_EQ(healed.alert_first_seen.count("replicas|ok/chat|"), 0u);
}

TEST_F(TuiViewsTest, BudgetBreachesAndComplianceFailuresAreAlerts) {
  ConsoleSnapshot snap;
  console::BudgetStatus b;
  b.budget.label = "team=ml";
  b.budget.amount_usd = 100;
  b.spent_usd = 130;
  b.ratio = 1.3;
  b.state = console::BudgetState::kBreach;
  snap.cost.budgets.push_back(b);
  b.budget.label = "team=web";
  b.state = console::BudgetState::kOk;
  snap.cost.budgets.push_back(b);
  console::Finding f;
  f.target = "eu1";
  f.rule_id = "EU-RES-01";
  f.message = "region us-east-1 not allowed";
  f.severity = console::Severity::kHigh;
  f.verdict = console::Verdict::kFail;
  f.evidence.push_back({"cloud.region", "us-east-1", 1234});
  const auto alerts = ComputeAlerts(snap, {f}, kDay, 10'000, nullptr);
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_EQ(alerts[0].kind, "budget");  // both critical: budgets rank before policy
  EXPECT_EQ(alerts[0].subject, "team=ml");
  EXPECT_NE(alerts[0].message.find("breach: $130.00 of $100.00 (130%)"), std::string::npos)
      << alerts[0].message;
  EXPECT_EQ(alerts[1].kind, "compliance");
  EXPECT_EQ(alerts[1].since, 1234);
  EXPECT_EQ(alerts[1].message, "EU-RES-01 region us-east-1 not allowed");
}

TEST_F(TuiViewsTest, ViewsFitEightyColumnsAndFilterRows) {
  const console::TimeMs now = console::NowMs();
  for (int i = 0; i < 5; ++i) {
    AddTarget("target-" + std::to_string(i), console::ConnState::kError, now - 1000, 0,
              "a very long error message that could never fit in one line of an eighty column "
              "terminal");
  }
  SnapshotSources src;
  src.store = store_.get();
  const ConsoleSnapshot snap = LoadSnapshot(src, now, true, nullptr);
  for (ViewId v : {ViewId::kFleet, ViewId::kAlerts, ViewId::kAudit}) {
    const ViewTable t = BuildView(v, snap, "");
    const auto rows = FilterRows(t, "");
    ASSERT_EQ(rows.size(), 5u) << ViewName(v);
    const auto w = FitColumns(t, rows, 79);
    int total = static_cast<int>(w.size()) - 1;
    for (int x : w) total += x;
    EXPECT_LE(total, 79) << ViewName(v);
    // Columns that are not free text keep their full width: names are never cut.
    EXPECT_GE(w[0], static_cast<int>(std::string("target-0").size()));
  }
  const ViewTable fleet = BuildView(ViewId::kFleet, snap, "");
  EXPECT_EQ(fleet.rows[0].tone, Tone::kBad);
  EXPECT_EQ(fleet.rows[0].cells[1].rfind("unreachable", 0), 0u) << fleet.rows[0].cells[1];
  EXPECT_EQ(FilterRows(fleet, "TARGET-3").size(), 1u);
  EXPECT_EQ(FilterRows(fleet, "nothing-like-this").size(), 0u);
  EXPECT_EQ(FitText("abcdef", 4), "abc~");
  EXPECT_EQ(FitText("ab", 4, true), "  ab");
}

TEST(SnapshotPollerTest, ReadersNeverWaitForASlowLoad) {
  std::atomic<int> loads{0};
  SnapshotPoller poller(
      [&](bool, const ConsoleSnapshot*) {
        ConsoleSnapshot s;
        s.loaded_at = ++loads;
        if (s.loaded_at >= 2) std::this_thread::sleep_for(milliseconds(1500));  // a slow store
        return s;
      },
      milliseconds(10));
  const auto end = std::chrono::steady_clock::now() + milliseconds(3000);
  while (poller.Latest() == nullptr && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_NE(poller.Latest(), nullptr);
  // The second load is now sleeping; reading the newest snapshot does not wait for it.
  std::this_thread::sleep_for(milliseconds(50));
  const auto t0 = std::chrono::steady_clock::now();
  auto snap = poller.Latest();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, milliseconds(50));
  EXPECT_EQ(snap->loaded_at, 1);
  poller.Stop();
}

}  // namespace
}  // namespace sextant::tui
