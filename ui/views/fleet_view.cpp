#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QSortFilterProxyModel>
#include <QTreeView>
#include <QVBoxLayout>

#include "ui/views/views.h"

namespace sextant::ui {

namespace {

// Keeps rows whose text matches and whose target state is the chosen one; parents of matching
// rows stay (recursive filtering).
class FleetFilterProxy : public QSortFilterProxyModel {
 public:
  using QSortFilterProxyModel::QSortFilterProxyModel;
  void SetState(const QString& state) {
    state_ = state;
    invalidateFilter();
  }

 protected:
  bool filterAcceptsRow(int row, const QModelIndex& parent) const override {
    const QModelIndex idx = sourceModel()->index(row, 0, parent);
    if (!state_.isEmpty()) {
      const QString kind = idx.data(KindRole).toString();
      if (kind == "account") return false;  // accounts stay only as parents of matches
      QString state = idx.data(StateRole).toString();
      if (state == "unknown") state = "error";
      if (state != state_) return false;
    }
    return QSortFilterProxyModel::filterAcceptsRow(row, parent);
  }

 private:
  QString state_;
};

}  // namespace

ConsoleView::ConsoleView(const QString& object_name, ViewContext* ctx, QWidget* parent)
    : QWidget(parent), ctx_(ctx) {
  setObjectName(object_name);
}

QString ConsoleView::NoActionsReason() const {
  return ctx_->actions ? QString()
                       : QString("not available: this console has no connection to the agents");
}

FleetView::FleetView(ViewContext* ctx, QWidget* parent) : ConsoleView("fleetView", ctx, parent) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout();
  filter_ = new QLineEdit(this);
  filter_->setObjectName("fleetFilter");
  filter_->setPlaceholderText("Filter accounts, targets, GPUs (Ctrl+F)");
  filter_->setClearButtonEnabled(true);
  state_filter_ = new QComboBox(this);
  state_filter_->setObjectName("fleetStateFilter");
  state_filter_->addItem("All states", QString());
  state_filter_->addItem("Connected", "connected");
  state_filter_->addItem("Stale", "stale");
  state_filter_->addItem("Unreachable", "error");
  bar->addWidget(filter_, 1);
  bar->addWidget(state_filter_);
  layout->addLayout(bar);

  model_ = new FleetTreeModel(this);
  auto* proxy = new FleetFilterProxy(this);
  proxy_ = proxy;
  proxy_->setSourceModel(model_);
  proxy_->setRecursiveFilteringEnabled(true);
  proxy_->setFilterCaseSensitivity(Qt::CaseInsensitive);
  proxy_->setFilterKeyColumn(FleetTreeModel::kName);
  proxy_->setSortRole(SortRole);
  tree_ = new QTreeView(this);
  tree_->setObjectName("fleetTree");
  tree_->setModel(proxy_);
  tree_->setSortingEnabled(true);
  tree_->sortByColumn(FleetTreeModel::kName, Qt::AscendingOrder);
  tree_->setAlternatingRowColors(true);
  tree_->setUniformRowHeights(true);
  tree_->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
  layout->addWidget(tree_, 1);
  summary_ = new QLabel(this);
  summary_->setObjectName("fleetSummary");
  layout->addWidget(summary_);

  connect(filter_, &QLineEdit::textChanged, proxy_,
          [this](const QString& text) { proxy_->setFilterFixedString(text); });
  connect(state_filter_, &QComboBox::currentIndexChanged, this, [this, proxy](int) {
    proxy->SetState(state_filter_->currentData().toString());
    tree_->expandAll();
  });
}

void FleetView::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  model_->SetSnapshot(snapshot);
  if (!snapshot) return;
  int targets = 0, connected = 0, stale = 0, unreachable = 0, gpus = 0;
  for (const auto& a : snapshot->fleet.accounts) {
    for (const auto& t : a.targets) {
      ++targets;
      switch (t.status.state) {
        case console::ConnState::kConnected:
          ++connected;
          break;
        case console::ConnState::kStale:
          ++stale;
          break;
        default:
          ++unreachable;
      }
      for (const auto& n : t.nodes) gpus += static_cast<int>(n.gpus.size());
    }
  }
  summary_->setText(QString("%1 targets · %2 connected · %3 stale · %4 unreachable · %5 GPUs · "
                            "as of %6")
                        .arg(targets)
                        .arg(connected)
                        .arg(stale)
                        .arg(unreachable)
                        .arg(gpus)
                        .arg(FormatTimeMs(snapshot->taken_at)));
  if (!expanded_once_ && model_->rowCount() > 0) {
    // Accounts and targets open on first sight; later the user's choice stays.
    tree_->expandToDepth(0);
    expanded_once_ = true;
  }
}

}  // namespace sextant::ui
