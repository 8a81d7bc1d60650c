#include "ui/models/fleet_tree_model.h"

#include <QFont>
#include <QGuiApplication>
#include <QPalette>
#include <algorithm>

namespace sextant::ui {

namespace {

const QStringList kHeaders = {"Name",  "Status",   "Since",    "Utilization", "Memory",   "Temp",
                              "Power", "Replicas", "TTFT p50", "TTFT p99",    "Tokens/s", "Queue"};

// What the aggregates of a row add up from its GPUs and deployments.
struct Figures {
  int gpus = 0;
  double util_sum = 0;
  int64_t mem_used = 0;
  int64_t mem_total = 0;
  double temp_max = 0;
  double power = 0;
  int replicas_ready = 0;
  int replicas_desired = 0;
  int deployments = 0;
  double ttft_p50 = 0;
  double ttft_p99 = 0;
  double tokens_per_s = 0;
  int64_t queue = 0;

  void AddGpu(const console::Gpu& g) {
    ++gpus;
    util_sum += g.utilization;
    mem_used += g.memory_used_bytes;
    mem_total += g.memory_total_bytes;
    temp_max = std::max(temp_max, g.temperature_c);
    power += g.power_w;
  }
  void AddDeployment(const console::Deployment& d) {
    ++deployments;
    replicas_ready += d.replicas_ready;
    replicas_desired += d.replicas_desired;
    ttft_p50 = std::max(ttft_p50, d.ttft_p50_ms);
    ttft_p99 = std::max(ttft_p99, d.ttft_p99_ms);
    tokens_per_s += d.tokens_per_s;
    queue += d.queue_depth;
  }
  void Add(const Figures& o) {
    gpus += o.gpus;
    util_sum += o.util_sum;
    mem_used += o.mem_used;
    mem_total += o.mem_total;
    temp_max = std::max(temp_max, o.temp_max);
    power += o.power;
    replicas_ready += o.replicas_ready;
    replicas_desired += o.replicas_desired;
    deployments += o.deployments;
    ttft_p50 = std::max(ttft_p50, o.ttft_p50);
    ttft_p99 = std::max(ttft_p99, o.ttft_p99);
    tokens_per_s += o.tokens_per_s;
    queue += o.queue;
  }
};

// Fills the figure columns of a row.
void FillFigures(RenderedRow& r, const Figures& f, bool with_deployments) {
  if (f.gpus > 0) {
    const double util = f.util_sum / f.gpus;
    r.display[FleetTreeModel::kUtilization] = QString::number(util * 100.0, 'f', 0) + " %";
    r.sort[FleetTreeModel::kUtilization] = util;
    r.background[FleetTreeModel::kUtilization] = UtilizationColor(util);
    r.display[FleetTreeModel::kMemory] = FormatBytes(f.mem_used) + " / " + FormatBytes(f.mem_total);
    r.sort[FleetTreeModel::kMemory] = static_cast<qlonglong>(f.mem_used);
    r.display[FleetTreeModel::kTemperature] = QString::number(f.temp_max, 'f', 0) + " °C";
    r.sort[FleetTreeModel::kTemperature] = f.temp_max;
    r.display[FleetTreeModel::kPower] = QString::number(f.power, 'f', 0) + " W";
    r.sort[FleetTreeModel::kPower] = f.power;
  }
  if (with_deployments && f.deployments > 0) {
    r.display[FleetTreeModel::kReplicas] =
        QString("%1/%2").arg(f.replicas_ready).arg(f.replicas_desired);
    r.sort[FleetTreeModel::kReplicas] = f.replicas_ready;
    r.display[FleetTreeModel::kTtftP50] = FormatMs(f.ttft_p50);
    r.sort[FleetTreeModel::kTtftP50] = f.ttft_p50;
    r.display[FleetTreeModel::kTtftP99] = FormatMs(f.ttft_p99);
    r.sort[FleetTreeModel::kTtftP99] = f.ttft_p99;
    r.display[FleetTreeModel::kTokensPerSecond] = QString::number(f.tokens_per_s, 'f', 1);
    r.sort[FleetTreeModel::kTokensPerSecond] = f.tokens_per_s;
    r.display[FleetTreeModel::kQueue] = QString::number(f.queue);
    r.sort[FleetTreeModel::kQueue] = static_cast<qlonglong>(f.queue);
  }
}

RenderedRow EmptyRow(const QString& key, const QString& name) {
  RenderedRow r = RenderedRow::Sized(key, FleetTreeModel::kColumnCount);
  r.display[FleetTreeModel::kName] = name;
  return r;
}

QString StateWord(console::ConnState s) { return QString::fromUtf8(console::ConnStateName(s)); }

QVariant StateColor(const QString& state) {
  if (state == "stale" || state == "unknown") {
    return QGuiApplication::palette().color(QPalette::Disabled, QPalette::Text);
  }
  if (state == "error") return QColor(0xd0, 0x30, 0x30);
  return {};
}

}  // namespace

FleetTreeModel::FleetTreeModel(QObject* parent) : QAbstractItemModel(parent) {}

void FleetTreeModel::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  QVector<Node> nodes;
  QVector<int> roots;
  if (snapshot) {
    for (const auto& account : snapshot->fleet.accounts) {
      const int a = static_cast<int>(nodes.size());
      Node an;
      an.kind = "account";
      an.row = static_cast<int>(roots.size());
      const QString aname = QString::fromStdString(account.name);
      an.cells = EmptyRow("account:" + aname, aname);
      an.cells.display[kStatus] = QString::fromStdString(account.provider);
      nodes.push_back(an);
      roots.push_back(a);
      Figures account_figures;
      int connected = 0;
      for (const auto& t : account.targets) {
        const int ti = static_cast<int>(nodes.size());
        Node tn;
        tn.kind = "target";
        tn.parent = a;
        tn.row = static_cast<int>(nodes[a].children.size());
        const QString tname = QString::fromStdString(t.target.name);
        tn.cells = EmptyRow("target:" + tname, tname);
        const QString state = StateWord(t.status.state);
        tn.cells.state = state;
        tn.cells.foreground = StateColor(state);
        tn.cells.display[kStatus] = QString::fromStdString(t.StatusText());
        tn.cells.sort[kStatus] = state;
        tn.cells.tooltip[kStatus] = QString::fromStdString(
            t.status.error.empty() ? t.target.endpoint : t.target.endpoint + ": " + t.status.error);
        tn.cells.display[kSince] = FormatTimeMs(t.status.since);
        tn.cells.sort[kSince] = static_cast<qlonglong>(t.status.since);
        tn.cells.tooltip[kName] = QString::fromStdString(
            t.provider + " " + t.region + " " + t.instance_type + " — " + t.target.endpoint);
        if (t.status.state == console::ConnState::kConnected) ++connected;
        nodes.push_back(tn);
        nodes[a].children.push_back(ti);
        Figures tf;
        for (const auto& d : t.deployments) tf.AddDeployment(d);
        for (const auto& node : t.nodes) {
          for (const auto& g : node.gpus) {
            tf.AddGpu(g);
            const int gi = static_cast<int>(nodes.size());
            Node gn;
            gn.kind = "gpu";
            gn.parent = ti;
            gn.row = static_cast<int>(nodes[ti].children.size());
            const QString gname = QString("%1 #%2 %3")
                                      .arg(QString::fromStdString(g.node))
                                      .arg(g.index)
                                      .arg(QString::fromStdString(g.model));
            gn.cells = EmptyRow("gpu:" + tname + "/" + QString::fromStdString(g.node) + "/" +
                                    QString::number(g.index),
                                gname);
            gn.cells.state = state;
            gn.cells.foreground = StateColor(state);
            gn.cells.display[kStatus] = QString::fromStdString(g.kind);
            gn.cells.display[kSince] = FormatTimeMs(g.sampled_at);
            gn.cells.sort[kSince] = static_cast<qlonglong>(g.sampled_at);
            Figures gf;
            gf.AddGpu(g);
            FillFigures(gn.cells, gf, false);
            nodes.push_back(gn);
            nodes[ti].children.push_back(gi);
          }
        }
        FillFigures(nodes[ti].cells, tf, true);
        account_figures.Add(tf);
      }
      FillFigures(nodes[a].cells, account_figures, true);
      nodes[a].cells.display[kStatus] =
          QString("%1 · %2/%3 connected")
              .arg(QString::fromStdString(account.provider.empty() ? "-" : account.provider))
              .arg(connected)
              .arg(account.targets.size());
      nodes[a].cells.sort[kStatus] = connected;
    }
  }

  bool same = nodes.size() == nodes_.size() && roots == roots_;
  for (qsizetype i = 0; same && i < nodes.size(); ++i) {
    same = nodes[i].cells.key == nodes_[i].cells.key && nodes[i].parent == nodes_[i].parent;
  }
  if (!same) {
    beginResetModel();
    nodes_ = std::move(nodes);
    roots_ = std::move(roots);
    endResetModel();
    return;
  }
  nodes_ = std::move(nodes);
  // One dataChanged per level: the accounts, then each parent's children.
  if (!roots_.isEmpty()) {
    emit dataChanged(index(0, 0), index(static_cast<int>(roots_.size()) - 1, kColumnCount - 1));
  }
  for (qsizetype i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (n.children.isEmpty()) continue;
    const int first = n.children.front();
    const int last = n.children.back();
    emit dataChanged(createIndex(0, 0, static_cast<quintptr>(first)),
                     createIndex(nodes_[last].row, kColumnCount - 1, static_cast<quintptr>(last)));
  }
}

QModelIndex FleetTreeModel::index(int row, int column, const QModelIndex& parent) const {
  if (row < 0 || column < 0 || column >= kColumnCount) return {};
  if (!parent.isValid()) {
    if (row >= roots_.size()) return {};
    return createIndex(row, column, static_cast<quintptr>(roots_[row]));
  }
  if (parent.model() != this || parent.column() != 0) return {};
  const Node& p = nodes_[static_cast<int>(parent.internalId())];
  if (row >= p.children.size()) return {};
  return createIndex(row, column, static_cast<quintptr>(p.children[row]));
}

QModelIndex FleetTreeModel::parent(const QModelIndex& child) const {
  if (!child.isValid()) return {};
  const Node& n = nodes_[static_cast<int>(child.internalId())];
  if (n.parent < 0) return {};
  return createIndex(nodes_[n.parent].row, 0, static_cast<quintptr>(n.parent));
}

int FleetTreeModel::rowCount(const QModelIndex& parent) const {
  if (!parent.isValid()) return static_cast<int>(roots_.size());
  if (parent.column() != 0) return 0;
  return static_cast<int>(nodes_[static_cast<int>(parent.internalId())].children.size());
}

int FleetTreeModel::columnCount(const QModelIndex&) const { return kColumnCount; }

QVariant FleetTreeModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid)) return {};
  const Node& n = nodes_[static_cast<int>(index.internalId())];
  const RenderedRow& r = n.cells;
  const int c = index.column();
  switch (role) {
    case Qt::DisplayRole:
      return r.display[c];
    case Qt::ToolTipRole:
      return r.tooltip[c];
    case Qt::BackgroundRole:
      return r.background[c];
    case Qt::ForegroundRole:
      return r.foreground;
    case Qt::FontRole:
      if (n.kind == "account") {
        QFont f;
        f.setBold(true);
        return f;
      }
      return {};
    case SortRole:
      return r.sort[c].isValid() ? r.sort[c] : r.display[c];
    case KeyRole:
      return r.key;
    case StateRole:
      return r.state;
    case KindRole:
      return n.kind;
    default:
      return {};
  }
}

QVariant FleetTreeModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation == Qt::Horizontal && role == Qt::DisplayRole && section >= 0 &&
      section < kColumnCount) {
    return kHeaders[section];
  }
  return QAbstractItemModel::headerData(section, orientation, role);
}

QModelIndex FleetTreeModel::TargetIndex(const QString& target) const {
  const QString key = "target:" + target;
  for (qsizetype i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].cells.key == key) {
      return createIndex(nodes_[i].row, 0, static_cast<quintptr>(i));
    }
  }
  return {};
}

}  // namespace sextant::ui
