#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QTableView>
#include <QVBoxLayout>

#include "ui/views/views.h"

namespace sextant::ui {

namespace {
constexpr int kAuditRecords = 500;  // newest records per target
}

AuditView::AuditView(ViewContext* ctx, QWidget* parent) : ConsoleView("auditView", ctx, parent) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout();
  filter_ = new QLineEdit(this);
  filter_->setObjectName("auditFilter");
  filter_->setPlaceholderText("Filter records: identity, RPC, outcome… (Ctrl+F)");
  filter_->setClearButtonEnabled(true);
  refresh_ = new QPushButton("Fetch from agents", this);
  refresh_->setObjectName("auditRefresh");
  refresh_->setShortcut(QKeySequence("Ctrl+R"));
  if (!ctx->actions) {
    refresh_->setEnabled(false);
    refresh_->setToolTip(NoActionsReason());
  }
  bar->addWidget(filter_, 1);
  bar->addWidget(refresh_);
  layout->addLayout(bar);
  auto* split = new QSplitter(Qt::Vertical, this);
  chain_model_ = new AuditChainModel(this);
  chain_ = new QTableView(split);
  chain_->setObjectName("auditChainTable");
  chain_->setModel(chain_model_);
  chain_->verticalHeader()->hide();
  chain_->horizontalHeader()->setStretchLastSection(true);
  chain_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  model_ = new AuditModel(this);
  proxy_ = new QSortFilterProxyModel(this);
  proxy_->setSourceModel(model_);
  proxy_->setSortRole(SortRole);
  proxy_->setFilterKeyColumn(-1);
  proxy_->setFilterCaseSensitivity(Qt::CaseInsensitive);
  table_ = new QTableView(split);
  table_->setObjectName("auditTable");
  table_->setModel(proxy_);
  table_->setSortingEnabled(true);
  table_->sortByColumn(AuditModel::kTime, Qt::DescendingOrder);
  table_->verticalHeader()->hide();
  table_->setAlternatingRowColors(true);
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  split->addWidget(chain_);
  split->addWidget(table_);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 3);
  layout->addWidget(split, 1);
  connect(filter_, &QLineEdit::textChanged, proxy_,
          [this](const QString& t) { proxy_->setFilterFixedString(t); });
  connect(refresh_, &QPushButton::clicked, this, &AuditView::FetchAll);
}

void AuditView::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  if (!snapshot) return;
  QStringList targets;
  for (const auto& t : snapshot->targets) targets << QString::fromStdString(t.name);
  for (const QString& gone : targets_) {
    if (!targets.contains(gone)) model_->RemoveTarget(gone.toStdString());
  }
  targets_ = targets;
}

void AuditView::Activated() {
  if (!fetched_once_) FetchAll();
}

void AuditView::FetchAll() {
  if (!ctx_->actions || in_flight_ > 0 || targets_.isEmpty()) return;
  fetched_once_ = true;
  auto actions = ctx_->actions;
  QPointer<AuditView> self(this);
  for (const QString& t : targets_) {
    ++in_flight_;
    const std::string target = t.toStdString();
    ctx_->runner->Run<Result<AuditFetch>>(
        [actions, target] { return actions->FetchAudit(target, kAuditRecords); },
        [self, target](Result<AuditFetch> r) {
          if (!self) return;
          --self->in_flight_;
          if (!r.ok()) {
            self->chain_model_->SetError(target, r.status().message());
            return;
          }
          self->chain_model_->SetFetch(*r);
          self->model_->SetFetch(*r);
        });
  }
}

}  // namespace sextant::ui
