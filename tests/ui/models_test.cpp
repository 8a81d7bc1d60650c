// The console's item models on a real console store: each passes QAbstractItemModelTester in
// Fatal mode, through refreshes that keep and that change the structure, and shows what the
// store holds.
#include <gtest/gtest.h>

#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QSortFilterProxyModel>

#include "tests/ui/console_fixture.h"
#include "ui/models/fleet_tree_model.h"
#include "ui/models/table_models.h"

namespace sextant::ui {
namespace {

using testing::FillStore;
using testing::kGiB;
using testing::ScratchDir;
using testing::TestSources;

class ModelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ScratchDir("models");
    auto st = console::ConsoleDatabase::Open(dir_);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = std::move(st).value();
    now_ = console::NowMs();
    FillStore(*store_, now_);
    snap_ = Load();
    ASSERT_NE(snap_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::shared_ptr<const ConsoleSnapshot> Load() {
    auto s = LoadConsoleSnapshot(*store_, TestSources(), now_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::make_shared<const ConsoleSnapshot>(std::move(s).value()) : nullptr;
  }
  static QString Cell(const QAbstractItemModel& m, const QModelIndex& i, int column,
                      int role = Qt::DisplayRole) {
    return m.index(i.row(), column, i.parent()).data(role).toString();
  }

  std::filesystem::path dir_;
  std::unique_ptr<console::ConsoleDatabase> store_;
  console::TimeMs now_ = 0;
  std::shared_ptr<const ConsoleSnapshot> snap_;
};

TEST_F(ModelsTest, FleetTreeShowsAccountsTargetsGpusAndStaleSince) {
  FleetTreeModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.SetSnapshot(snap_);
  // Accounts sorted by name: "(none)" (lab), prod-eu (eu1), prod-us (us1).
  ASSERT_EQ(model.rowCount(), 3);
  const QModelIndex eu1 = model.TargetIndex("eu1");
  ASSERT_TRUE(eu1.isValid());
  EXPECT_EQ(eu1.parent().data().toString(), "prod-eu");
  EXPECT_EQ(eu1.data(StateRole).toString(), "connected");
  EXPECT_EQ(model.rowCount(eu1), 2);  // two GPUs
  // The target aggregates its GPUs' latest samples: utilization mean (0.5 + 0.7) / 2.
  EXPECT_NEAR(
      model.index(eu1.row(), FleetTreeModel::kUtilization, eu1.parent()).data(SortRole).toDouble(),
      0.6, 1e-9);
  EXPECT_EQ(Cell(model, eu1, FleetTreeModel::kUtilization), "60 %");
  EXPECT_EQ(
      model.index(eu1.row(), FleetTreeModel::kMemory, eu1.parent()).data(SortRole).toLongLong(),
      21 * kGiB);
  EXPECT_EQ(Cell(model, eu1, FleetTreeModel::kReplicas), "2/2");
  EXPECT_EQ(Cell(model, eu1, FleetTreeModel::kTtftP99), "120.0 ms");
  EXPECT_EQ(Cell(model, eu1, FleetTreeModel::kPower), "650 W");
  const QModelIndex gpu1 = model.index(1, 0, eu1);
  EXPECT_EQ(gpu1.data(KindRole).toString(), "gpu");
  EXPECT_EQ(model.index(1, FleetTreeModel::kTemperature, eu1).data().toString(), "61 °C");
  // The utilization cell is coloured (heat map).
  EXPECT_TRUE(model.index(1, FleetTreeModel::kUtilization, eu1).data(Qt::BackgroundRole).isValid());

  const QModelIndex us1 = model.TargetIndex("us1");
  EXPECT_EQ(us1.data(StateRole).toString(), "stale");
  EXPECT_TRUE(Cell(model, us1, FleetTreeModel::kStatus).startsWith("stale since"))
      << Cell(model, us1, FleetTreeModel::kStatus).toStdString();
  EXPECT_EQ(Cell(model, us1, FleetTreeModel::kSince), FormatTimeMs(now_ - 600'000));
  EXPECT_TRUE(us1.data(Qt::ForegroundRole).isValid());  // greyed
  const QModelIndex lab = model.TargetIndex("lab");
  EXPECT_EQ(lab.data(StateRole).toString(), "error");
  EXPECT_TRUE(Cell(model, lab, FleetTreeModel::kStatus).contains("connection refused"));
}

TEST_F(ModelsTest, RefreshWithSameStructureKeepsIndexesAndChangesResetCleanly) {
  FleetTreeModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  QSortFilterProxyModel proxy;
  proxy.setSourceModel(&model);
  proxy.setRecursiveFilteringEnabled(true);
  proxy.setSortRole(SortRole);
  QAbstractItemModelTester proxy_tester(&proxy,
                                        QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.SetSnapshot(snap_);
  QPersistentModelIndex kept = model.TargetIndex("eu1");
  QSignalSpy resets(&model, &QAbstractItemModel::modelReset);
  QSignalSpy changes(&model, &QAbstractItemModel::dataChanged);
  // New samples: same targets and GPUs.
  console::GpuSample g{"eu1", "node-a", 0, now_ + 1000, 1, 0.95, 70 * kGiB, 80, 700};
  ASSERT_TRUE(store_->telemetry().AppendSamples({g}, {}).ok());
  now_ += 1000;
  model.SetSnapshot(Load());
  EXPECT_EQ(resets.count(), 0);
  EXPECT_GT(changes.count(), 0);
  ASSERT_TRUE(kept.isValid());
  EXPECT_EQ(kept.data().toString(), "eu1");
  EXPECT_EQ(model.index(0, FleetTreeModel::kTemperature, kept).data().toString(), "80 °C");
  // A removed target changes the structure: one reset, and the tester checks the new tree.
  ASSERT_TRUE(store_->targets().Remove("lab").ok());
  model.SetSnapshot(Load());
  EXPECT_EQ(resets.count(), 1);
  EXPECT_FALSE(model.TargetIndex("lab").isValid());
  proxy.setFilterFixedString("us1");
  EXPECT_EQ(proxy.rowCount(), 1);  // only prod-us stays, as us1's parent
  model.SetSnapshot(nullptr);
  EXPECT_EQ(model.rowCount(), 0);
}

TEST_F(ModelsTest, DeploymentsTableHasOneRowPerTargetDeployment) {
  DeploymentsModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.SetSnapshot(snap_);
  ASSERT_EQ(model.rowCount(), 2);
  const int eu = model.RowOfKey("eu1/chat");
  const int us = model.RowOfKey("us1/chat");
  ASSERT_GE(eu, 0);
  ASSERT_GE(us, 0);
  EXPECT_EQ(model.index(eu, DeploymentsModel::kReplicas).data().toString(), "2/2");
  EXPECT_EQ(model.index(us, DeploymentsModel::kReplicas).data().toString(), "1/2");
  EXPECT_DOUBLE_EQ(model.index(eu, DeploymentsModel::kTokensPerSecond).data(SortRole).toDouble(),
                   250.0);
  EXPECT_DOUBLE_EQ(model.index(us, DeploymentsModel::kTtftP99).data(SortRole).toDouble(), 400.0);
  EXPECT_EQ(model.index(us, DeploymentsModel::kQueue).data().toString(), "9");
  // Inter-token latency and KV cache use, as the latest sample has them.
  EXPECT_EQ(model.index(eu, DeploymentsModel::kItlP50).data().toString(), "12.0 ms");
  EXPECT_DOUBLE_EQ(model.index(eu, DeploymentsModel::kItlP50).data(SortRole).toDouble(), 12.0);
  EXPECT_EQ(model.index(us, DeploymentsModel::kItlP99).data().toString(), "80.0 ms");
  EXPECT_DOUBLE_EQ(model.index(us, DeploymentsModel::kItlP99).data(SortRole).toDouble(), 80.0);
  EXPECT_EQ(model.index(eu, DeploymentsModel::kKvCache).data().toString(), "42 %");
  EXPECT_DOUBLE_EQ(model.index(eu, DeploymentsModel::kKvCache).data(SortRole).toDouble(), 0.42);
  EXPECT_EQ(model.index(us, DeploymentsModel::kKvCache).data().toString(), "95 %");
  // A nearly full KV cache is marked; a comfortable one is not.
  EXPECT_TRUE(model.index(us, DeploymentsModel::kKvCache).data(Qt::BackgroundRole).isValid());
  EXPECT_FALSE(model.index(eu, DeploymentsModel::kKvCache).data(Qt::BackgroundRole).isValid());
  EXPECT_EQ(model.headerData(DeploymentsModel::kItlP50, Qt::Horizontal).toString(), "ITL p50");
  EXPECT_EQ(model.headerData(DeploymentsModel::kKvCache, Qt::Horizontal).toString(), "KV cache");
  EXPECT_EQ(model.index(us, 0).data(StateRole).toString(), "stale");
  auto d = model.Deployment("eu1/chat");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->ttft_p50_ms, 40);
  EXPECT_EQ(d->itl_p99_ms, 30);
  EXPECT_DOUBLE_EQ(d->kv_cache_use, 0.42);
}

TEST_F(ModelsTest, CostModelMatchesTheCostEngineAndExportsCsv) {
  CostModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.SetSnapshot(snap_);
  const auto& by_target = snap_->cost.at(console::GroupBy::kTarget);
  model.SetGroupBy(console::GroupBy::kTarget);
  ASSERT_EQ(model.rowCount(), static_cast<int>(by_target.report.lines.size()) + 1);
  // p5.48xlarge in us-east-1: 98.32 $/h for 8 H100s; eu1 has 2 GPUs for about 2 hours.
  const int eu = model.RowOfKey("eu1");
  ASSERT_GE(eu, 0);
  double expected = 0;
  for (const auto& l : by_target.report.lines) {
    if (l.key == "eu1") expected = l.provisioned_usd;
  }
  EXPECT_GT(expected, 0);
  EXPECT_DOUBLE_EQ(model.index(eu, CostModel::kProvisionedUsd).data(SortRole).toDouble(), expected);
  EXPECT_EQ(model.index(model.rowCount() - 1, 0).data().toString(), "total");
  const QString csv = model.ToCsv();
  const QStringList lines = csv.trimmed().split('\n');
  EXPECT_EQ(lines.size(), model.rowCount() + 1);
  EXPECT_TRUE(lines[0].startsWith("key,gpu_hours_provisioned"));
  bool eu_line = false;
  for (const QString& line : lines) {
    if (!line.startsWith("eu1,")) continue;
    eu_line = true;
    const QStringList fields = line.split(',');
    ASSERT_EQ(fields.size(), 8) << line.toStdString();
    EXPECT_NEAR(fields[3].toDouble(), expected, 1e-3);
  }
  EXPECT_TRUE(eu_line) << csv.toStdString();
  model.SetGroupBy(console::GroupBy::kLabel);
  EXPECT_GE(model.RowOfKey("team=ml"), 0);
  // Budgets were evaluated for team=ml.
  ASSERT_EQ(snap_->budgets.size(), 1u);
  EXPECT_GT(snap_->budgets[0].spent_usd, 0);
}

TEST_F(ModelsTest, ComplianceMatrixHasTargetsByRulesWithEvidence) {
  ComplianceMatrixModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.SetSnapshot(snap_);
  ASSERT_EQ(model.rowCount(), 3);
  int rules = 0;
  for (const auto& p : snap_->packs) rules += static_cast<int>(p.rules.size());
  ASSERT_EQ(model.columnCount(), rules + 1);
  // Every cell maps to its finding, and its text is the finding's verdict.
  for (int r = 0; r < model.rowCount(); ++r) {
    for (int c = 1; c < model.columnCount(); ++c) {
      const console::Finding* f = model.FindingAt(model.index(r, c));
      ASSERT_NE(f, nullptr) << r << "," << c;
      EXPECT_EQ(f->target, model.index(r, 0).data().toString().toStdString());
      EXPECT_EQ(model.index(r, c).data().toString().toStdString(),
                std::string(console::VerdictName(f->verdict)));
    }
  }
  // The region rule of eu-data-residency fails for us-east-1 with the region as evidence.
  bool found = false;
  const int eu = model.RowOfKey("eu1");
  for (int c = 1; c < model.columnCount(); ++c) {
    const console::Finding* f = model.FindingAt(model.index(eu, c));
    if (f->pack == "eu-data-residency" && f->verdict == console::Verdict::kFail) {
      for (const auto& e : f->evidence) found |= e.value == "us-east-1";
    }
  }
  EXPECT_TRUE(found);
  model.SetSnapshot(nullptr);
  EXPECT_EQ(model.rowCount(), 0);
}

TEST_F(ModelsTest, AuditAndTargetModels) {
  AuditModel audit;
  QAbstractItemModelTester t1(&audit, QAbstractItemModelTester::FailureReportingMode::Fatal);
  AuditChainModel chain;
  QAbstractItemModelTester t2(&chain, QAbstractItemModelTester::FailureReportingMode::Fatal);
  AuditFetch f;
  f.target = "eu1";
  f.chain_verified = true;
  f.head_seq = 2;
  f.scope = "own";
  f.records = {{"eu1", 1, "2026-01-01T00:00:00.000Z", "spiffe://x/vendor/c", "vendor-operator",
                "WhoAmI", "", "allowed", "ab12"},
               {"eu1", 2, "2026-01-01T00:00:01.000Z", "spiffe://x/vendor/c", "vendor-operator",
                "DeleteDeployment", "chat", "denied", "cd34"}};
  audit.SetFetch(f);
  chain.SetFetch(f);
  chain.SetError("us1", "deadline exceeded");
  ASSERT_EQ(audit.rowCount(), 2);
  EXPECT_EQ(audit.index(1, AuditModel::kRpc).data().toString(), "DeleteDeployment");
  EXPECT_TRUE(audit.index(1, AuditModel::kOutcome).data(Qt::BackgroundRole).isValid());
  ASSERT_EQ(chain.rowCount(), 2);
  EXPECT_EQ(chain.index(chain.RowOfKey("eu1"), AuditChainModel::kChain).data().toString(),
            "verified");
  EXPECT_TRUE(chain.index(chain.RowOfKey("us1"), AuditChainModel::kChain)
                  .data()
                  .toString()
                  .contains("deadline exceeded"));
  audit.RemoveTarget("eu1");
  EXPECT_EQ(audit.rowCount(), 0);

  TargetsModel targets;
  QAbstractItemModelTester t3(&targets, QAbstractItemModelTester::FailureReportingMode::Fatal);
  targets.SetSnapshot(snap_);
  ASSERT_EQ(targets.rowCount(), 3);
  const int eu = targets.RowOfKey("eu1");
  EXPECT_EQ(targets.index(eu, TargetsModel::kLabels).data().toString(), "team=ml");
  EXPECT_EQ(targets.index(eu, TargetsModel::kIdentity).data().toString(),
            "spiffe://x/vendor/c (vendor-operator)");
  EXPECT_EQ(targets.index(targets.RowOfKey("lab"), 0).data(StateRole).toString(), "error");
  AccountsModel accounts;
  QAbstractItemModelTester t4(&accounts, QAbstractItemModelTester::FailureReportingMode::Fatal);
  accounts.SetSnapshot(snap_);
  ASSERT_EQ(accounts.rowCount(), 2);
  EXPECT_EQ(accounts.index(accounts.RowOfKey("prod-eu"), AccountsModel::kTargets).data().toInt(),
            1);
}

}  // namespace
}  // namespace sextant::ui
