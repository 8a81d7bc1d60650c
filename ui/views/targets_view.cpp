#include <QDialog>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSortFilterProxyModel>
#include <QTableView>
#include <QVBoxLayout>

#include "ui/views/views.h"

namespace sextant::ui {

namespace {
QString Q(const std::string& s) { return QString::fromStdString(s); }
}  // namespace

TargetsView::TargetsView(ViewContext* ctx, QWidget* parent)
    : ConsoleView("targetsView", ctx, parent) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout();
  add_ = new QPushButton("Add target…", this);
  add_->setObjectName("addTarget");
  add_->setShortcut(QKeySequence("Ctrl+N"));
  test_ = new QPushButton("Test", this);
  test_->setObjectName("testTarget");
  test_->setShortcut(QKeySequence("Ctrl+T"));
  test_->setToolTip("Handshake with the agent and ask who this console is (Ctrl+T)");
  remove_ = new QPushButton("Remove…", this);
  remove_->setObjectName("removeTarget");
  remove_->setShortcut(QKeySequence::Delete);
  if (!ctx->actions) {
    for (QPushButton* b : {add_, test_, remove_}) {
      b->setEnabled(false);
      b->setToolTip(NoActionsReason());
    }
  }
  bar->addWidget(add_);
  bar->addWidget(test_);
  bar->addWidget(remove_);
  bar->addStretch(1);
  layout->addLayout(bar);
  model_ = new TargetsModel(this);
  auto* proxy = new QSortFilterProxyModel(this);
  proxy->setSourceModel(model_);
  proxy->setSortRole(SortRole);
  table_ = new QTableView(this);
  table_->setObjectName("targetsTable");
  table_->setModel(proxy);
  table_->setSortingEnabled(true);
  table_->sortByColumn(TargetsModel::kName, Qt::AscendingOrder);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::SingleSelection);
  table_->verticalHeader()->hide();
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  table_->horizontalHeader()->setStretchLastSection(true);
  layout->addWidget(table_, 2);
  result_ = new QLabel(this);
  result_->setObjectName("targetTestResult");
  result_->setWordWrap(true);
  result_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  layout->addWidget(result_);
  auto* accounts_box = new QGroupBox("Cloud accounts", this);
  auto* al = new QVBoxLayout(accounts_box);
  accounts_model_ = new AccountsModel(this);
  accounts_ = new QTableView(accounts_box);
  accounts_->setObjectName("accountsTable");
  accounts_->setModel(accounts_model_);
  accounts_->verticalHeader()->hide();
  accounts_->horizontalHeader()->setStretchLastSection(true);
  al->addWidget(accounts_);
  layout->addWidget(accounts_box, 1);
  connect(test_, &QPushButton::clicked, this, &TargetsView::TestSelected);
  connect(remove_, &QPushButton::clicked, this, &TargetsView::RemoveSelected);
  connect(add_, &QPushButton::clicked, this, &TargetsView::AddTargetDialog);
}

void TargetsView::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  const QString selected = SelectedTarget();
  model_->SetSnapshot(snapshot);
  accounts_model_->SetSnapshot(snapshot);
  if (selected.isEmpty() && table_->model()->rowCount() > 0) {
    table_->setCurrentIndex(table_->model()->index(0, 0));
  }
}

QString TargetsView::SelectedTarget() const {
  const QModelIndex i = table_->currentIndex();
  return i.isValid() ? i.data(KeyRole).toString() : QString();
}

void TargetsView::TestSelected() {
  const QString target = SelectedTarget();
  if (!ctx_->actions || target.isEmpty()) return;
  result_->setText("testing " + target + "…");
  auto actions = ctx_->actions;
  QPointer<TargetsView> self(this);
  const std::string name = target.toStdString();
  ctx_->runner->Run<Result<TargetTestResult>>(
      [actions, name] { return actions->TestTarget(name); },
      [self, target](Result<TargetTestResult> r) {
        if (!self) return;
        if (!r.ok()) {
          self->result_->setText(target + ": " + Q(r.status().message()));
          return;
        }
        QStringList rpcs;
        for (const auto& s : r->allowed_rpcs) rpcs << Q(s);
        self->result_->setText(QString("%1: agent %2 (%3) knows this console as %4, role %5; "
                                       "allowed: %6")
                                   .arg(target, Q(r->agent_name), Q(r->agent_version),
                                        Q(r->identity), Q(r->role), rpcs.join(", ")));
      });
}

void TargetsView::RemoveSelected() {
  const QString target = SelectedTarget();
  if (!ctx_->actions || target.isEmpty()) return;
  if (!ctx_->confirm("Remove target", "Remove " + target +
                                          " and its history from this console? The agent is "
                                          "not changed.")) {
    return;
  }
  auto actions = ctx_->actions;
  QPointer<TargetsView> self(this);
  const std::string name = target.toStdString();
  ctx_->runner->Run<Status>([actions, name] { return actions->RemoveTarget(name); },
                            [self, target](Status s) {
                              if (!self) return;
                              self->result_->setText(s.ok() ? "removed " + target : Q(s.message()));
                              if (self->ctx_->request_refresh) self->ctx_->request_refresh();
                            });
}

void TargetsView::AddTargetDialog() {
  if (!ctx_->actions) return;
  QDialog dialog(this);
  dialog.setObjectName("addTargetDialog");
  dialog.setWindowTitle("Add target");
  auto* form = new QFormLayout(&dialog);
  auto* name = new QLineEdit(&dialog);
  auto* endpoint = new QLineEdit(&dialog);
  endpoint->setPlaceholderText("host:port");
  auto* account = new QLineEdit(&dialog);
  auto* ca = new QLineEdit(&dialog);
  auto* cert = new QLineEdit(&dialog);
  auto* key = new QLineEdit(&dialog);
  auto* labels = new QLineEdit(&dialog);
  labels->setPlaceholderText("team=ml, env=prod");
  form->addRow("Name", name);
  form->addRow("Endpoint", endpoint);
  form->addRow("Account", account);
  form->addRow("CA (PEM)", ca);
  form->addRow("Client certificate", cert);
  form->addRow("Client key", key);
  form->addRow("Labels", labels);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, &dialog);
  form->addRow(buttons);
  connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
  if (dialog.exec() != QDialog::Accepted) return;
  console::Target t;
  t.name = name->text().trimmed().toStdString();
  t.endpoint = endpoint->text().trimmed().toStdString();
  t.account = account->text().trimmed().toStdString();
  t.ca_path = ca->text().trimmed().toStdString();
  t.cert_path = cert->text().trimmed().toStdString();
  t.key_path = key->text().trimmed().toStdString();
  for (const QString& kv : labels->text().split(',', Qt::SkipEmptyParts)) {
    const QStringList parts = kv.trimmed().split('=');
    if (parts.size() != 2 || parts[0].isEmpty()) {
      result_->setText("label '" + kv.trimmed() + "' is not KEY=VALUE");
      return;
    }
    t.labels[parts[0].toStdString()] = parts[1].toStdString();
  }
  if (t.name.empty() || t.endpoint.empty()) {
    result_->setText("a target needs a name and an endpoint");
    return;
  }
  auto actions = ctx_->actions;
  QPointer<TargetsView> self(this);
  ctx_->runner->Run<Status>([actions, t] { return actions->AddTarget(t); },
                            [self, n = Q(t.name)](Status s) {
                              if (!self) return;
                              self->result_->setText(s.ok() ? "added " + n : Q(s.message()));
                              if (self->ctx_->request_refresh) self->ctx_->request_refresh();
                            });
}

}  // namespace sextant::ui
