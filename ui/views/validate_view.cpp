#include <QComboBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QProgressBar>
#include <QPushButton>
#include <QSplitter>
#include <QTableView>
#include <QTableWidget>
#include <QTextEdit>
#include <QVBoxLayout>

#include <algorithm>

#include "ui/views/views.h"

namespace sextant::ui {

namespace {

QString Q(const std::string& s) { return QString::fromStdString(s); }

// Roles that may apply deployments on an agent (the agent's policy decides; this only keeps the
// console from offering what would be refused).
bool RoleMayApply(const std::string& role) {
  return role.empty() || role == "vendor-operator" || role == "customer-admin";
}

// "3", "3 (was 1)", "1 (new)"; empty while not known.
QString GenerationText(const PushProgress& p) {
  if (p.generation == 0 && p.previous_generation == 0) return {};
  const QString now = p.generation > 0 ? QString::number(p.generation) : QString("absent");
  if (p.previous_generation == p.generation) return now;
  if (p.previous_generation == 0) return now + " (new)";
  return now + QString(" (was %1)").arg(p.previous_generation);
}

}  // namespace

ValidateView::ValidateView(ViewContext* ctx, QWidget* parent)
    : ConsoleView("validateView", ctx, parent) {
  auto* layout = new QVBoxLayout(this);

  auto* vbox = new QGroupBox("Validate on this workstation (embedded engine)", this);
  auto* vl = new QVBoxLayout(vbox);
  auto* form = new QFormLayout();
  auto* spec_row = new QHBoxLayout();
  spec_ = new QLineEdit(ctx->default_spec, vbox);
  spec_->setObjectName("specPath");
  spec_->setPlaceholderText("deployment spec (YAML)");
  auto* browse = new QPushButton("Browse…", vbox);
  browse->setObjectName("specBrowse");
  spec_row->addWidget(spec_, 1);
  spec_row->addWidget(browse);
  form->addRow("Spec", spec_row);
  model_dir_ = new QLineEdit(ctx->default_model_dir, vbox);
  model_dir_->setObjectName("modelDir");
  model_dir_->setPlaceholderText("where the spec's model resolves (default: current directory)");
  form->addRow("Model dir", model_dir_);
  vl->addLayout(form);
  auto* run_row = new QHBoxLayout();
  validate_ = new QPushButton("Validate", vbox);
  validate_->setObjectName("validateButton");
  validate_->setShortcut(QKeySequence("Ctrl+Return"));
  validate_->setToolTip(
      "Run the spec's validation prompts greedily and sign the report "
      "(Ctrl+Return)");
  cancel_ = new QPushButton("Cancel", vbox);
  cancel_->setObjectName("cancelButton");
  cancel_->setEnabled(false);
  cancel_->setShortcut(QKeySequence("Esc"));
  cancel_->setToolTip("Stop the running validation; no report is stored (Esc)");
  progress_ = new QProgressBar(vbox);
  progress_->setObjectName("validateProgress");
  progress_->setRange(0, 1000);
  progress_->setValue(0);
  stage_ = new QLabel("idle", vbox);
  stage_->setObjectName("validateStage");
  run_row->addWidget(validate_);
  run_row->addWidget(cancel_);
  run_row->addWidget(progress_, 1);
  run_row->addWidget(stage_);
  vl->addLayout(run_row);
  report_ = new QTextEdit(vbox);
  report_->setObjectName("validateReport");
  report_->setReadOnly(true);
  report_->setPlaceholderText("The validation report appears here.");
  vl->addWidget(report_, 1);

  auto* pbox = new QGroupBox("Push the identical deployment to targets (canary first)", this);
  auto* pl = new QHBoxLayout(pbox);
  auto* left = new QVBoxLayout();
  targets_ = new QListWidget(pbox);
  targets_->setObjectName("pushTargets");
  left->addWidget(new QLabel("Targets", pbox));
  left->addWidget(targets_, 1);
  auto* pform = new QFormLayout();
  canary_ = new QComboBox(pbox);
  canary_->setObjectName("canaryTarget");
  pform->addRow("Canary", canary_);
  left->addLayout(pform);
  push_ = new QPushButton("Push…", pbox);
  push_->setObjectName("pushButton");
  push_->setShortcut(QKeySequence("Ctrl+Shift+P"));
  left->addWidget(push_);
  auto* rb = new QHBoxLayout();
  rollback_deployment_ = new QLineEdit(pbox);
  rollback_deployment_->setObjectName("rollbackDeployment");
  rollback_deployment_->setPlaceholderText("deployment");
  rollback_ = new QPushButton("Roll back…", pbox);
  rollback_->setObjectName("rollbackButton");
  rb->addWidget(rollback_deployment_, 1);
  rb->addWidget(rollback_);
  left->addLayout(rb);
  pl->addLayout(left, 1);
  push_table_ = new QTableWidget(0, kPushColumns, pbox);
  push_table_->setObjectName("pushProgress");
  push_table_->setHorizontalHeaderLabels({"Target", "Wave", "State", "Generation", "Message"});
  push_table_->horizontalHeader()->setStretchLastSection(true);
  push_table_->verticalHeader()->hide();
  push_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  pl->addWidget(push_table_, 2);

  reports_model_ = new RowTableModel({"Report", "Spec", "Digest", "Result", "Created"}, this);
  reports_ = new QTableView(this);
  reports_->setObjectName("reportsTable");
  reports_->setModel(reports_model_);
  reports_->verticalHeader()->hide();
  reports_->horizontalHeader()->setStretchLastSection(true);
  reports_->setMaximumHeight(160);

  auto* split = new QSplitter(Qt::Vertical, this);
  split->addWidget(vbox);
  split->addWidget(pbox);
  split->addWidget(reports_);
  layout->addWidget(split, 1);

  if (!ctx->actions) {
    for (QPushButton* b : {validate_, push_, rollback_}) {
      b->setEnabled(false);
      b->setToolTip(NoActionsReason());
    }
  }
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, "Deployment spec", spec_->text(),
                                                   "Specs (*.yaml *.yml)");
    if (!f.isEmpty()) spec_->setText(f);
  });
  connect(validate_, &QPushButton::clicked, this, &ValidateView::StartValidation);
  connect(cancel_, &QPushButton::clicked, this, &ValidateView::CancelValidation);
  connect(push_, &QPushButton::clicked, this, &ValidateView::StartPush);
  connect(rollback_, &QPushButton::clicked, this, &ValidateView::StartRollback);
}

void ValidateView::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  if (!snapshot) return;
  // Targets: keep the user's checks; a target whose role cannot apply is not offered.
  QSet<QString> checked;
  for (int i = 0; i < targets_->count(); ++i) {
    if (targets_->item(i)->checkState() == Qt::Checked) checked.insert(targets_->item(i)->text());
  }
  const bool first_fill = targets_->count() == 0;
  const QString canary = canary_->currentText();
  targets_->clear();
  canary_->clear();
  for (const auto& a : snapshot->fleet.accounts) {
    for (const auto& t : a.targets) {
      auto* item = new QListWidgetItem(Q(t.target.name), targets_);
      const bool may = RoleMayApply(t.status.role);
      if (may) {
        item->setFlags(Qt::ItemIsEnabled | Qt::ItemIsUserCheckable | Qt::ItemIsSelectable);
        item->setCheckState(first_fill || checked.contains(item->text()) ? Qt::Checked
                                                                         : Qt::Unchecked);
        item->setToolTip(Q(t.StatusText()));
        canary_->addItem(item->text());
      } else {
        item->setFlags(Qt::ItemIsUserCheckable);  // shown, not enabled
        item->setCheckState(Qt::Unchecked);
        item->setToolTip(Q("role " + t.status.role + " (" + t.status.identity +
                           ") cannot apply deployments on this target"));
      }
    }
  }
  const int ci = canary_->findText(canary);
  if (ci >= 0) canary_->setCurrentIndex(ci);

  QVector<RenderedRow> rows;
  for (const auto& r : snapshot->reports) {
    RenderedRow row;
    row.key = QString::number(r.id);
    row.display = {static_cast<qlonglong>(r.id), Q(r.spec_name), Q(r.spec_digest.substr(0, 19)),
                   r.passed ? QString("passed") : QString("failed"), Q(r.created_at)};
    row.background = {QVariant(), QVariant(), QVariant(), StateColor(r.passed ? "pass" : "fail"),
                      QVariant()};
    row.state = r.passed ? "pass" : "fail";
    rows.push_back(std::move(row));
  }
  reports_model_->SetRows(std::move(rows));
}

void ValidateView::SetRunning(bool validating, bool pushing) {
  validating_ = validating;
  pushing_ = pushing;
  const bool idle = !validating && !pushing;
  validate_->setEnabled(idle && ctx_->actions != nullptr);
  push_->setEnabled(idle && ctx_->actions != nullptr);
  rollback_->setEnabled(idle && ctx_->actions != nullptr);
  // A push is not cancelled half-way (the rollout's journal finishes or rolls it back).
  cancel_->setEnabled(validating);
}

void ValidateView::StartValidation() {
  if (!ctx_->actions || validating_ || pushing_) return;
  const std::string spec = spec_->text().toStdString();
  const std::string model_dir = model_dir_->text().toStdString();
  if (spec.empty()) {
    stage_->setText("choose a spec first");
    return;
  }
  cancel_flag_ = ctx_->runner->NewCancelFlag();
  const int generation = ++generation_;
  SetRunning(true, false);
  progress_->setValue(0);
  stage_->setText("starting");
  report_->clear();
  auto actions = ctx_->actions;
  auto cancel = cancel_flag_;
  ActionRunner* runner = ctx_->runner;
  QPointer<ValidateView> self(this);
  auto progress = [runner, self, generation, cancel](std::string_view stage, double fraction) {
    runner->Post([self, generation, cancel,
                  stage = QString::fromUtf8(stage.data(), static_cast<int>(stage.size())),
                  fraction] {
      // Once cancelled the stage says so until the run has stopped.
      if (!self || self->generation_ != generation || cancel->load()) return;
      self->progress_->setValue(static_cast<int>(fraction * 1000));
      self->stage_->setText(stage);
    });
  };
  ctx_->runner->Run<Result<ValidationOutcome>>(
      [actions, spec, model_dir, progress, cancel] {
        return actions->Validate(spec, model_dir, progress, *cancel);
      },
      [self, generation](Result<ValidationOutcome> r) {
        if (!self || self->generation_ != generation) return;
        self->SetRunning(false, false);
        if (!r.ok()) {
          const bool cancelled = r.status().code() == StatusCode::kCancelled;
          self->stage_->setText(cancelled ? "cancelled" : "failed");
          if (cancelled) self->progress_->setValue(0);
          self->report_->setPlainText(cancelled ? "Validation cancelled; no report was stored.\n" +
                                                      Q(r.status().message())
                                                : Q(r.status().message()));
          return;
        }
        self->progress_->setValue(1000);
        self->stage_->setText(r->passed ? "passed" : "failed thresholds");
        self->ShowOutcome(*r);
        if (self->ctx_->request_refresh) self->ctx_->request_refresh();
      });
}

void ValidateView::CancelValidation() {
  if (!validating_ || !cancel_flag_ || cancel_flag_->load()) return;
  // The engine checks the flag per token (and while it reads and loads the model); the view
  // stays busy until the run has really stopped, so that no second engine starts beside it.
  cancel_flag_->store(true);
  cancel_->setEnabled(false);
  stage_->setText("cancelling…");
}

void ValidateView::ShowOutcome(const ValidationOutcome& o) {
  QString html;
  html += QString("<h3>%1 — %2</h3>")
              .arg(Q(o.spec_name).toHtmlEscaped(), o.passed ? "PASSED" : "FAILED");
  html += QString(
              "<p>report %1 · spec %2<br>model sha256 %3<br>backend %4 on %5<br>"
              "output digest <tt>%6</tt><br>worst TTFT %7 · %8 tokens/s</p>")
              .arg(o.report_id)
              .arg(Q(o.spec_digest), Q(o.model_sha256), Q(o.backend), Q(o.device),
                   Q(o.output_digest), FormatMs(o.worst_ttft_ms))
              .arg(o.tokens_per_second, 0, 'f', 1);
  html +=
      "<table border=1 cellspacing=0 cellpadding=3><tr><th>#</th><th>tokens</th>"
      "<th>TTFT</th><th>tokens/s</th><th>output digest</th></tr>";
  for (const auto& p : o.prompts) {
    html += QString("<tr><td>%1</td><td>%2</td><td>%3</td><td>%4</td><td><tt>%5</tt></td></tr>")
                .arg(p.index)
                .arg(p.generated_tokens)
                .arg(FormatMs(p.ttft_ms))
                .arg(p.tokens_per_second, 0, 'f', 1)
                .arg(Q(p.output_digest.substr(0, 16)));
  }
  html += "</table>";
  for (const auto& f : o.failures) html += "<p>failure: " + Q(f).toHtmlEscaped() + "</p>";
  report_->setHtml(html);
}

void ValidateView::SetPushRow(const PushProgress& p, const QString& wave) {
  const QString target = Q(p.target);
  int row = -1;
  for (int r = 0; r < push_table_->rowCount(); ++r) {
    if (push_table_->item(r, kPushTarget)->text() == target) row = r;
  }
  if (row < 0) {
    row = push_table_->rowCount();
    push_table_->insertRow(row);
    for (int c = 0; c < kPushColumns; ++c) push_table_->setItem(row, c, new QTableWidgetItem());
    push_table_->item(row, kPushTarget)->setText(target);
  }
  if (!wave.isEmpty()) push_table_->item(row, kPushWave)->setText(wave);
  push_table_->item(row, kPushState)->setText(Q(p.state));
  push_table_->item(row, kPushState)->setBackground(StateColor(Q(p.state)));
  const QString generation = GenerationText(p);
  if (!generation.isEmpty()) push_table_->item(row, kPushGeneration)->setText(generation);
  // Progress events carry a message only now and then: keep the last one shown.
  if (!p.message.empty() || !generation.isEmpty()) {
    push_table_->item(row, kPushMessage)->setText(Q(p.message));
    push_table_->item(row, kPushMessage)->setToolTip(Q(p.message));
  }
}

void ValidateView::StartPush() {
  if (!ctx_->actions || validating_ || pushing_) return;
  PushArgs args;
  args.spec_file = spec_->text().toStdString();
  for (int i = 0; i < targets_->count(); ++i) {
    if (targets_->item(i)->checkState() == Qt::Checked) {
      args.targets.push_back(targets_->item(i)->text().toStdString());
    }
  }
  args.canary = canary_->currentText().toStdString();
  if (args.targets.empty() || args.spec_file.empty()) {
    stage_->setText("choose a spec and at least one target");
    return;
  }
  if (args.canary.empty()) args.canary = args.targets.front();
  if (std::find(args.targets.begin(), args.targets.end(), args.canary) == args.targets.end()) {
    stage_->setText("the canary must be one of the checked targets");
    return;
  }
  if (!ctx_->confirm("Push deployment", QString("Push %1 to %2 target(s), canary %3 first?")
                                            .arg(spec_->text())
                                            .arg(args.targets.size())
                                            .arg(canary_->currentText()))) {
    return;
  }
  // The rollout's order: the canary alone, then the others in waves of max_unavailable.
  push_table_->setRowCount(0);
  SetPushRow({args.canary, "pending", ""}, "canary");
  int placed = 0;
  for (const auto& t : args.targets) {
    if (t == args.canary) continue;
    const int wave = 1 + placed++ / std::max(1, args.max_unavailable);
    SetPushRow({t, "pending", ""}, QString("wave %1").arg(wave));
  }
  SetRunning(false, true);
  cancel_flag_ = ctx_->runner->NewCancelFlag();
  auto actions = ctx_->actions;
  auto cancel = cancel_flag_;
  ActionRunner* runner = ctx_->runner;
  QPointer<ValidateView> self(this);
  auto progress = [runner, self](const PushProgress& p) {
    runner->Post([self, p] {
      if (self) self->SetPushRow(p);
    });
  };
  ctx_->runner->Run<Result<PushOutcome>>(
      [actions, args, progress, cancel] { return actions->Push(args, progress, *cancel); },
      [self](Result<PushOutcome> r) {
        if (!self) return;
        self->SetRunning(false, false);
        if (!r.ok()) {
          self->stage_->setText("push failed: " + Q(r.status().message()));
          return;
        }
        for (const auto& t : r->targets) self->SetPushRow(t);
        self->stage_->setText(r->ok ? (r->no_op ? "push: nothing to change" : "push done")
                                    : "push stopped: " + Q(r->stopped_because));
        if (!r->deployment.empty()) self->rollback_deployment_->setText(Q(r->deployment));
        if (self->ctx_->request_refresh) self->ctx_->request_refresh();
      });
}

void ValidateView::StartRollback() {
  if (!ctx_->actions || validating_ || pushing_) return;
  const std::string deployment = rollback_deployment_->text().toStdString();
  if (deployment.empty()) {
    stage_->setText("name the deployment to roll back");
    return;
  }
  if (!ctx_->confirm("Roll back", QString("Roll %1 back to its previous generation on every "
                                          "target of its latest push?")
                                      .arg(rollback_deployment_->text()))) {
    return;
  }
  push_table_->setRowCount(0);
  SetRunning(false, true);
  auto actions = ctx_->actions;
  ActionRunner* runner = ctx_->runner;
  QPointer<ValidateView> self(this);
  auto progress = [runner, self](const PushProgress& p) {
    runner->Post([self, p] {
      if (self) self->SetPushRow(p);
    });
  };
  ctx_->runner->Run<Result<PushOutcome>>(
      [actions, deployment, progress] { return actions->Rollback(deployment, progress); },
      [self](Result<PushOutcome> r) {
        if (!self) return;
        self->SetRunning(false, false);
        if (!r.ok()) {
          self->stage_->setText("rollback failed: " + Q(r.status().message()));
          return;
        }
        for (const auto& t : r->targets) self->SetPushRow(t);
        self->stage_->setText(r->ok ? "rolled back" : "rollback stopped: " + Q(r->stopped_because));
      });
}

}  // namespace sextant::ui
