// FleetTreeModel: accounts → targets → GPUs, with utilization, memory, temperature, power,
// replicas, time to first token, tokens/s, queue depth, and each target's connection state
// (connected, stale since T, unreachable with the cause) from a ConsoleSnapshot.
//
// Account and target rows aggregate their children (mean utilization, summed memory and power,
// hottest GPU, worst latency). Rows of stale or unreachable targets (and their GPUs) carry the
// state in StateRole and are drawn greyed / in the error colour. The utilization column is
// coloured as a heat map (BackgroundRole).
//
// A refresh with the same accounts, targets and GPUs emits dataChanged per level; any change of
// structure resets the model.
//
// Thread-safety: a QObject of the GUI thread.
#pragma once

#include <QAbstractItemModel>
#include <QVector>
#include <memory>

#include "ui/console_snapshot.h"
#include "ui/models/row_table_model.h"

namespace sextant::ui {

class FleetTreeModel : public QAbstractItemModel {
 public:
  enum Column {
    kName,
    kStatus,
    kSince,
    kUtilization,
    kMemory,
    kTemperature,
    kPower,
    kReplicas,
    kTtftP50,
    kTtftP99,
    kTokensPerSecond,
    kQueue,
    kColumnCount
  };

  explicit FleetTreeModel(QObject* parent = nullptr);

  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot);

  QModelIndex index(int row, int column, const QModelIndex& parent = QModelIndex()) const override;
  QModelIndex parent(const QModelIndex& child) const override;
  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;

  // The index of a target row (column 0), invalid when absent.
  QModelIndex TargetIndex(const QString& target) const;

 private:
  struct Node {
    int parent = -1;  // index into nodes_, -1 for accounts
    int row = 0;
    QVector<int> children;
    QString kind;  // "account", "target", "gpu"
    RenderedRow cells;
  };
  QVector<Node> nodes_;
  QVector<int> roots_;
};

}  // namespace sextant::ui
