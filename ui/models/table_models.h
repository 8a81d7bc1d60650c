// The console's flat tables, each a RowTableModel filled by a pure render step from a
// ConsoleSnapshot (or, for the audit log, from what the agents returned):
//   DeploymentsModel  one row per target × deployment: replicas ready/desired, TTFT p50/p99,
//                     tokens/s, queue depth, model and spec digests, last sample, target state
//   CostModel         one row per deployment / target / label over the window, plus a total
//   ComplianceMatrixModel  targets × rules, each cell pass / fail / warn / unknown
//   AuditModel        audit records of every fetched target; AuditChainModel: chain state
//   TargetsModel      the configured targets with endpoint, account, labels, state
//   AccountsModel     the configured cloud accounts
// Column enums below are the contract with the views and tests.
//
// Thread-safety: QObjects of the GUI thread.
#pragma once

#include <memory>
#include <optional>

#include "ui/console_actions.h"
#include "ui/console_snapshot.h"
#include "ui/models/row_table_model.h"

namespace sextant::ui {

class DeploymentsModel : public RowTableModel {
 public:
  enum Column {
    kTarget,
    kDeployment,
    kReplicas,
    kTtftP50,
    kTtftP99,
    kItlP50,  // inter-token latency
    kItlP99,
    kTokensPerSecond,
    kQueue,
    kKvCache,      // KV cache use, % (sort: 0..1)
    kPrefixCache,  // share of prompt tokens reused from the prefix cache, % ("—" when unknown)
    kModel,
    kSpec,
    kSampledAt,
    kState,
    kColumnCount
  };
  explicit DeploymentsModel(QObject* parent = nullptr);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot);
  // The latest figures of a row ("target/deployment"), if present.
  std::optional<console::Deployment> Deployment(const QString& key) const;

 private:
  std::shared_ptr<const ConsoleSnapshot> snapshot_;
};

class CostModel : public RowTableModel {
 public:
  enum Column {
    kKey,
    kGpuHoursProvisioned,
    kGpuHoursAllocated,
    kProvisionedUsd,
    kAllocatedUsd,
    kIdleUsd,
    kTokens,
    kUsdPerMillionTokens,
    kColumnCount
  };
  explicit CostModel(QObject* parent = nullptr);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot);
  void SetGroupBy(console::GroupBy by);
  console::GroupBy group_by() const { return by_; }
  // The CSV of what the table shows (header line, then one line per row, the total last).
  QString ToCsv() const;

 private:
  void Render();
  std::shared_ptr<const ConsoleSnapshot> snapshot_;
  console::GroupBy by_ = console::GroupBy::kDeployment;
};

// Rows: targets; columns: "pack/rule" in pack then rule order. The cell's StateRole is the
// verdict name; FindingRole gives the index into snapshot->findings.
class ComplianceMatrixModel : public RowTableModel {
 public:
  static constexpr int FindingRole = Qt::UserRole + 20;
  explicit ComplianceMatrixModel(QObject* parent = nullptr);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot);
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  // The finding of a cell, or null.
  const console::Finding* FindingAt(const QModelIndex& index) const;
  const std::shared_ptr<const ConsoleSnapshot>& snapshot() const { return snapshot_; }

 private:
  std::shared_ptr<const ConsoleSnapshot> snapshot_;
  QVector<QVector<int>> finding_index_;  // [row][column - 1] -> index into findings, -1 none
};

class AuditModel : public RowTableModel {
 public:
  enum Column {
    kTarget,
    kSeq,
    kTime,
    kIdentity,
    kRole,
    kRpc,
    kObject,
    kOutcome,
    kHash,
    kColumnCount
  };
  explicit AuditModel(QObject* parent = nullptr);
  // Replaces the records of fetch.target (other targets' records stay).
  void SetFetch(const AuditFetch& fetch);
  void RemoveTarget(const std::string& target);

 private:
  void Render();
  std::map<std::string, AuditFetch> fetches_;
};

class AuditChainModel : public RowTableModel {
 public:
  enum Column { kTarget, kChain, kHeadSeq, kScope, kRecords, kColumnCount };
  explicit AuditChainModel(QObject* parent = nullptr);
  void SetFetch(const AuditFetch& fetch);
  void SetError(const std::string& target, const std::string& error);

 private:
  void Render();
  struct Entry {
    std::optional<AuditFetch> fetch;
    std::string error;
  };
  std::map<std::string, Entry> entries_;
};

class TargetsModel : public RowTableModel {
 public:
  enum Column { kName, kEndpoint, kAccount, kLabels, kState, kLastSeen, kIdentity, kColumnCount };
  explicit TargetsModel(QObject* parent = nullptr);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot);
};

class AccountsModel : public RowTableModel {
 public:
  enum Column { kName, kProvider, kAccountId, kRegions, kTargets, kColumnCount };
  explicit AccountsModel(QObject* parent = nullptr);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot);
};

// Colour of a verdict / rollout state / connection state word.
QColor StateColor(const QString& word);

}  // namespace sextant::ui
