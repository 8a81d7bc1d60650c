#include <QBarCategoryAxis>
#include <QBarSet>
#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QDateTime>
#include <QFile>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStackedBarSeries>
#include <QTableView>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QValueAxis>
#include <algorithm>
#include <map>

#include "ui/views/views.h"

namespace sextant::ui {

namespace {
constexpr int kChartKeys = 8;  // the biggest keys get their own colour; the rest is "other"
QString Q(const std::string& s) { return QString::fromStdString(s); }
}  // namespace

CostView::CostView(ViewContext* ctx, QWidget* parent) : ConsoleView("costView", ctx, parent) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout();
  group_ = new QComboBox(this);
  group_->setObjectName("costGroupBy");
  group_->addItem("By deployment", static_cast<int>(console::GroupBy::kDeployment));
  group_->addItem("By target", static_cast<int>(console::GroupBy::kTarget));
  group_->addItem("By label", static_cast<int>(console::GroupBy::kLabel));
  auto* export_csv = new QPushButton("Export CSV…", this);
  export_csv->setObjectName("exportCsv");
  export_csv->setShortcut(QKeySequence("Ctrl+E"));
  export_csv->setToolTip("Write the table as CSV (Ctrl+E)");
  bar->addWidget(new QLabel("Cost over the last 7 days", this));
  bar->addStretch(1);
  bar->addWidget(group_);
  bar->addWidget(export_csv);
  layout->addLayout(bar);

  auto* split = new QSplitter(Qt::Vertical, this);
  auto* chart = new QChart();
  chart->setTitle("Cost per day (USD)");
  chart->legend()->setAlignment(Qt::AlignRight);
  chart_view_ = new QChartView(chart, split);
  chart_view_->setObjectName("costChart");
  chart_view_->setRenderHint(QPainter::Antialiasing);
  chart_view_->setMinimumHeight(220);
  model_ = new CostModel(this);
  auto* proxy = new QSortFilterProxyModel(this);
  proxy->setSourceModel(model_);
  proxy->setSortRole(SortRole);
  table_ = new QTableView(split);
  table_->setObjectName("costTable");
  table_->setModel(proxy);
  table_->setSortingEnabled(true);
  table_->sortByColumn(CostModel::kKey, Qt::AscendingOrder);
  table_->verticalHeader()->hide();
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  table_->setAlternatingRowColors(true);
  auto* bottom = new QWidget(split);
  auto* bl = new QVBoxLayout(bottom);
  bl->setContentsMargins(0, 0, 0, 0);
  budgets_ = new QTableWidget(0, 5, bottom);
  budgets_->setObjectName("budgetTable");
  budgets_->setHorizontalHeaderLabels({"Budget", "Window", "Spent", "Amount", "State"});
  budgets_->verticalHeader()->hide();
  budgets_->horizontalHeader()->setStretchLastSection(true);
  budgets_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  notes_ = new QLabel(bottom);
  notes_->setObjectName("costNotes");
  notes_->setWordWrap(true);
  bl->addWidget(budgets_, 1);
  bl->addWidget(notes_);
  split->addWidget(chart_view_);
  split->addWidget(table_);
  split->addWidget(bottom);
  layout->addWidget(split, 1);

  connect(group_, &QComboBox::currentIndexChanged, this, [this](int) {
    model_->SetGroupBy(static_cast<console::GroupBy>(group_->currentData().toInt()));
    RenderChart();
  });
  connect(export_csv, &QPushButton::clicked, this, [this] {
    const QString path = ctx_->save_file("Export cost", "sextant-cost.csv", "CSV (*.csv)");
    if (path.isEmpty()) return;
    Status s = ExportCsv(path);
    notes_->setText(s.ok() ? "wrote " + path : Q(s.message()));
  });
}

void CostView::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  snapshot_ = snapshot;
  model_->SetSnapshot(snapshot);
  if (!snapshot) return;
  RenderChart();
  budgets_->setRowCount(static_cast<int>(snapshot->budgets.size()));
  for (int i = 0; i < static_cast<int>(snapshot->budgets.size()); ++i) {
    const auto& b = snapshot->budgets[static_cast<size_t>(i)];
    const QString state = Q(std::string(console::BudgetStateName(b.state)));
    const QStringList cells = {Q(b.budget.label), QString("%1 days").arg(b.budget.window_days),
                               FormatUsd(b.spent_usd), FormatUsd(b.budget.amount_usd),
                               QString("%1 (%2 %)").arg(state).arg(b.ratio * 100, 0, 'f', 0)};
    for (int c = 0; c < cells.size(); ++c) {
      auto* item = new QTableWidgetItem(cells[c]);
      if (c == 4) item->setBackground(StateColor(state));
      budgets_->setItem(i, c, item);
    }
  }
  QStringList notes;
  for (const auto& n : snapshot->cost_notes) notes << Q(n);
  notes_->setText(notes.join("\n"));
}

void CostView::RenderChart() {
  QChart* chart = chart_view_->chart();
  chart->removeAllSeries();
  for (QAbstractAxis* a : chart->axes()) {
    chart->removeAxis(a);
    delete a;
  }
  if (!snapshot_) return;
  auto it = snapshot_->cost.find(model_->group_by());
  if (it == snapshot_->cost.end()) return;
  // Biggest keys over the window first.
  std::vector<std::pair<double, std::string>> keys;
  for (const auto& l : it->second.report.lines)
    keys.push_back({l.provisioned_usd + l.allocated_usd, l.key});
  std::sort(keys.rbegin(), keys.rend());
  std::map<std::string, int> set_of;
  QStringList names;
  for (const auto& [usd, key] : keys) {
    if (static_cast<int>(names.size()) >= kChartKeys) break;
    set_of[key] = static_cast<int>(names.size());
    names << Q(key);
  }
  const bool by_deployment = model_->group_by() == console::GroupBy::kDeployment;
  const int other = static_cast<int>(names.size());
  names << "other";
  names << (by_deployment ? "idle" : "");
  auto* series = new QStackedBarSeries();
  QVector<QBarSet*> sets;
  for (const QString& n : names) {
    auto* s = new QBarSet(n);
    sets.push_back(s);
  }
  QStringList days;
  double max_day = 0;
  for (const auto& d : it->second.daily) {
    days << QDateTime::fromMSecsSinceEpoch(d.day, Qt::UTC).toString("MM-dd");
    QVector<double> v(names.size(), 0.0);
    for (const auto& l : d.lines) {
      auto s = set_of.find(l.key);
      // Deployments are allocated cost; targets and labels are what was provisioned.
      v[s == set_of.end() ? other : s->second] +=
          by_deployment ? l.allocated_usd : l.provisioned_usd;
    }
    if (by_deployment) {
      // Idle cost belongs to targets (provisioned but not allocated): the day's sum over them.
      double idle = 0;
      auto t = snapshot_->cost.find(console::GroupBy::kTarget);
      if (t != snapshot_->cost.end()) {
        for (const auto& td : t->second.daily) {
          if (td.day != d.day) continue;
          for (const auto& l : td.lines) idle += l.idle_usd;
        }
      }
      v[other + 1] = idle;
    }
    double sum = 0;
    for (int i = 0; i < v.size(); ++i) {
      *sets[i] << v[i];
      sum += v[i];
    }
    max_day = std::max(max_day, sum);
  }
  for (int i = 0; i < sets.size(); ++i) {
    if (sets[i]->label().isEmpty() || sets[i]->sum() <= 0) {
      delete sets[i];
      continue;
    }
    series->append(sets[i]);
  }
  chart->addSeries(series);
  auto* x = new QBarCategoryAxis();
  x->append(days);
  auto* y = new QValueAxis();
  y->setRange(0, std::max(1.0, max_day * 1.1));
  y->setLabelFormat("$%.0f");
  // Budgets: the daily share of each, named on the axis for scale.
  QStringList budget_notes;
  for (const auto& b : snapshot_->budgets) {
    budget_notes << QString("%1: %2/day")
                        .arg(Q(b.budget.label))
                        .arg(FormatUsd(b.budget.amount_usd / std::max(1, b.budget.window_days)));
  }
  y->setTitleText(budget_notes.isEmpty() ? "USD" : "USD (budgets " + budget_notes.join(", ") + ")");
  chart->addAxis(x, Qt::AlignBottom);
  chart->addAxis(y, Qt::AlignLeft);
  series->attachAxis(x);
  series->attachAxis(y);
}

Status CostView::ExportCsv(const QString& path) const {
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate | QIODevice::Text)) {
    return Status::Internal("cannot write " + path.toStdString() + ": " +
                            f.errorString().toStdString());
  }
  const QByteArray bytes = model_->ToCsv().toUtf8();
  if (f.write(bytes) != bytes.size()) {
    return Status::Internal("short write to " + path.toStdString());
  }
  return Status();
}

}  // namespace sextant::ui
