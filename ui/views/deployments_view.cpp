#include <QChart>
#include <QChartView>
#include <QDateTime>
#include <QDateTimeAxis>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QTableView>
#include <QVBoxLayout>
#include <QValueAxis>
#include <algorithm>

#include "ui/views/views.h"

namespace sextant::ui {

namespace {
constexpr size_t kHistoryPoints = 600;  // 10 minutes at 1 Hz
}

DeploymentsView::DeploymentsView(ViewContext* ctx, QWidget* parent)
    : ConsoleView("deploymentsView", ctx, parent) {
  auto* layout = new QVBoxLayout(this);
  filter_ = new QLineEdit(this);
  filter_->setObjectName("deploymentsFilter");
  filter_->setPlaceholderText("Filter by target or deployment (Ctrl+F)");
  filter_->setClearButtonEnabled(true);
  layout->addWidget(filter_);

  auto* split = new QSplitter(Qt::Vertical, this);
  split->setObjectName("deploymentsSplitter");
  model_ = new DeploymentsModel(this);
  proxy_ = new QSortFilterProxyModel(this);
  proxy_->setSourceModel(model_);
  proxy_->setSortRole(SortRole);
  proxy_->setFilterKeyColumn(-1);
  proxy_->setFilterCaseSensitivity(Qt::CaseInsensitive);
  table_ = new QTableView(split);
  table_->setObjectName("deploymentsTable");
  table_->setModel(proxy_);
  table_->setSortingEnabled(true);
  table_->sortByColumn(DeploymentsModel::kTarget, Qt::AscendingOrder);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::SingleSelection);
  table_->setAlternatingRowColors(true);
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  table_->verticalHeader()->hide();

  auto* detail = new QWidget(split);
  auto* dl = new QVBoxLayout(detail);
  dl->setContentsMargins(0, 0, 0, 0);
  detail_ = new QLabel("Select a deployment to follow its latency and throughput.", detail);
  detail_->setObjectName("deploymentDetail");
  dl->addWidget(detail_);
  chart_ = new QChart();
  chart_->setTitle("Live: time to first token and tokens/s");
  chart_->legend()->setAlignment(Qt::AlignBottom);
  p50_ = new QLineSeries();
  p50_->setName("TTFT p50 (ms)");
  p99_ = new QLineSeries();
  p99_->setName("TTFT p99 (ms)");
  tps_ = new QLineSeries();
  tps_->setName("tokens/s");
  chart_->addSeries(p50_);
  chart_->addSeries(p99_);
  chart_->addSeries(tps_);
  time_axis_ = new QDateTimeAxis();
  time_axis_->setFormat("HH:mm:ss");
  time_axis_->setTitleText("UTC");
  ms_axis_ = new QValueAxis();
  ms_axis_->setTitleText("ms");
  ms_axis_->setLabelFormat("%.0f");
  tps_axis_ = new QValueAxis();
  tps_axis_->setTitleText("tokens/s");
  tps_axis_->setLabelFormat("%.0f");
  chart_->addAxis(time_axis_, Qt::AlignBottom);
  chart_->addAxis(ms_axis_, Qt::AlignLeft);
  chart_->addAxis(tps_axis_, Qt::AlignRight);
  for (QLineSeries* s : {p50_, p99_}) {
    s->attachAxis(time_axis_);
    s->attachAxis(ms_axis_);
  }
  tps_->attachAxis(time_axis_);
  tps_->attachAxis(tps_axis_);
  chart_view_ = new QChartView(chart_, detail);
  chart_view_->setObjectName("deploymentChart");
  chart_view_->setRenderHint(QPainter::Antialiasing);
  chart_view_->setMinimumHeight(220);
  dl->addWidget(chart_view_, 1);
  split->addWidget(table_);
  split->addWidget(detail);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 1);
  layout->addWidget(split, 1);

  connect(filter_, &QLineEdit::textChanged, proxy_,
          [this](const QString& t) { proxy_->setFilterFixedString(t); });
  connect(table_->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
          [this](const QModelIndex& current, const QModelIndex&) {
            selected_ = current.isValid() ? current.data(KeyRole).toString() : QString();
            ShowDetail();
          });
}

void DeploymentsView::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  model_->SetSnapshot(snapshot);
  // Every deployment's history grows with each new sample (not each refresh).
  for (const auto& row : model_->rows()) {
    auto d = model_->Deployment(row.key);
    if (!d || d->sampled_at <= 0) continue;
    auto& h = history_[row.key];
    if (!h.empty() && h.back().t >= d->sampled_at) continue;
    h.push_back({d->sampled_at, d->ttft_p50_ms, d->ttft_p99_ms, d->tokens_per_s, d->queue_depth});
    while (h.size() > kHistoryPoints) h.pop_front();
  }
  if (selected_.isEmpty() && proxy_->rowCount() > 0) {
    // Show something live from the start: the first row.
    table_->setCurrentIndex(proxy_->index(0, 0));
    selected_ = proxy_->index(0, 0).data(KeyRole).toString();
    ShowDetail();
  } else {
    ShowDetail();
  }
}

void DeploymentsView::Select(const QString& key) {
  for (int r = 0; r < proxy_->rowCount(); ++r) {
    if (proxy_->index(r, 0).data(KeyRole).toString() == key) {
      table_->setCurrentIndex(proxy_->index(r, 0));
      selected_ = key;
      ShowDetail();
      return;
    }
  }
}

int DeploymentsView::ChartPoints() const { return static_cast<int>(p50_->count()); }

void DeploymentsView::ShowDetail() {
  auto d = selected_.isEmpty() ? std::nullopt : model_->Deployment(selected_);
  if (!d) {
    p50_->clear();
    p99_->clear();
    tps_->clear();
    return;
  }
  detail_->setText(QString("<b>%1</b> · replicas %2/%3 · TTFT p50 %4 · p99 %5 · %6 tokens/s · "
                           "queue %7 · model %8")
                       .arg(selected_.toHtmlEscaped())
                       .arg(d->replicas_ready)
                       .arg(d->replicas_desired)
                       .arg(FormatMs(d->ttft_p50_ms), FormatMs(d->ttft_p99_ms))
                       .arg(d->tokens_per_s, 0, 'f', 1)
                       .arg(d->queue_depth)
                       .arg(QString::fromStdString(d->model_sha256.substr(0, 16))));
  const auto& h = history_[selected_];
  QList<QPointF> p50, p99, tps;
  double max_ms = 1, max_tps = 1;
  for (const auto& s : h) {
    p50.append(QPointF(static_cast<double>(s.t), s.p50));
    p99.append(QPointF(static_cast<double>(s.t), s.p99));
    tps.append(QPointF(static_cast<double>(s.t), s.tps));
    max_ms = std::max(max_ms, s.p99);
    max_tps = std::max(max_tps, s.tps);
  }
  p50_->replace(p50);
  p99_->replace(p99);
  tps_->replace(tps);
  const qint64 last = h.empty() ? QDateTime::currentMSecsSinceEpoch() : h.back().t;
  const qint64 first = h.empty() ? last - 60000 : std::min(h.front().t, last - 60000);
  time_axis_->setRange(QDateTime::fromMSecsSinceEpoch(first, Qt::UTC),
                       QDateTime::fromMSecsSinceEpoch(last, Qt::UTC));
  ms_axis_->setRange(0, max_ms * 1.15);
  tps_axis_->setRange(0, max_tps * 1.15);
}

}  // namespace sextant::ui
