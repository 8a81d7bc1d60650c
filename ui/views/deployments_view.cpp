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
  chart_->setTitle("Live: time to first token, inter-token latency and tokens/s");
  chart_->legend()->setAlignment(Qt::AlignBottom);
  p50_ = new QLineSeries();
  p50_->setName("TTFT p50 (ms)");
  p99_ = new QLineSeries();
  p99_->setName("TTFT p99 (ms)");
  itl50_ = new QLineSeries();
  itl50_->setName("ITL p50 (ms)");
  itl99_ = new QLineSeries();
  itl99_->setName("ITL p99 (ms)");
  tps_ = new QLineSeries();
  tps_->setName("tokens/s");
  chart_->addSeries(p50_);
  chart_->addSeries(p99_);
  chart_->addSeries(itl50_);
  chart_->addSeries(itl99_);
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
  for (QLineSeries* s : {p50_, p99_, itl50_, itl99_}) {
    s->attachAxis(time_axis_);
    s->attachAxis(ms_axis_);
  }
  tps_->attachAxis(time_axis_);
  tps_->attachAxis(tps_axis_);
  chart_view_ = new QChartView(chart_, detail);
  chart_view_->setObjectName("deploymentChart");
  chart_view_->setRenderHint(QPainter::Antialiasing);
  chart_view_->setMinimumHeight(220);

  kv_chart_ = new QChart();
  kv_chart_->setTitle("Live: KV cache use");
  kv_chart_->legend()->setAlignment(Qt::AlignBottom);
  kv_ = new QLineSeries();
  kv_->setName("KV cache use (%)");
  kv_chart_->addSeries(kv_);
  kv_time_axis_ = new QDateTimeAxis();
  kv_time_axis_->setFormat("HH:mm:ss");
  kv_time_axis_->setTitleText("UTC");
  kv_time_axis_->setTickCount(2);  // a narrower chart: the first and last time only
  auto* kv_axis = new QValueAxis();
  kv_axis->setTitleText("%");
  kv_axis->setLabelFormat("%.0f");
  kv_axis->setRange(0, 100);
  kv_chart_->addAxis(kv_time_axis_, Qt::AlignBottom);
  kv_chart_->addAxis(kv_axis, Qt::AlignLeft);
  kv_->attachAxis(kv_time_axis_);
  kv_->attachAxis(kv_axis);
  auto* kv_view = new QChartView(kv_chart_, detail);
  kv_view->setObjectName("deploymentKvChart");
  kv_view->setRenderHint(QPainter::Antialiasing);
  kv_view->setMinimumHeight(160);
  auto* charts = new QSplitter(Qt::Horizontal, detail);
  charts->setObjectName("deploymentChartsSplitter");
  charts->addWidget(chart_view_);
  charts->addWidget(kv_view);
  charts->setStretchFactor(0, 2);
  charts->setStretchFactor(1, 1);
  dl->addWidget(charts, 1);
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
    h.push_back({d->sampled_at, d->ttft_p50_ms, d->ttft_p99_ms, d->tokens_per_s, d->queue_depth,
                 d->itl_p50_ms, d->itl_p99_ms, d->kv_cache_use});
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

QList<QPointF> DeploymentsView::SeriesPoints(const QString& name) const {
  for (QLineSeries* s : {p50_, p99_, itl50_, itl99_, tps_, kv_}) {
    if (s->name() == name) return s->points();
  }
  return {};
}

void DeploymentsView::ShowDetail() {
  auto d = selected_.isEmpty() ? std::nullopt : model_->Deployment(selected_);
  if (!d) {
    for (QLineSeries* s : {p50_, p99_, itl50_, itl99_, tps_, kv_}) s->clear();
    return;
  }
  detail_->setText(
      QString("<b>%1</b> · replicas %2/%3 · TTFT p50 %4 · p99 %5 · ITL p50 %6 · "
              "p99 %7 · %8 tokens/s · queue %9 · KV cache %10 · prefix hits %11 · "
              "model %12")
          .arg(selected_.toHtmlEscaped())
          .arg(d->replicas_ready)
          .arg(d->replicas_desired)
          .arg(FormatMs(d->ttft_p50_ms), FormatMs(d->ttft_p99_ms), FormatMs(d->itl_p50_ms),
               FormatMs(d->itl_p99_ms))
          .arg(d->tokens_per_s, 0, 'f', 1)
          .arg(d->queue_depth)
          .arg(FormatPercent(d->kv_cache_use),
               d->prefix_cache_hit >= 0 ? FormatPercent(d->prefix_cache_hit) : QString("—"),
               QString::fromStdString(d->model_sha256.substr(0, 16))));
  const auto& h = history_[selected_];
  QList<QPointF> p50, p99, itl50, itl99, tps, kv;
  double max_ms = 1, max_tps = 1;
  for (const auto& s : h) {
    const auto t = static_cast<double>(s.t);
    p50.append(QPointF(t, s.p50));
    p99.append(QPointF(t, s.p99));
    itl50.append(QPointF(t, s.itl50));
    itl99.append(QPointF(t, s.itl99));
    tps.append(QPointF(t, s.tps));
    kv.append(QPointF(t, s.kv * 100));
    max_ms = std::max({max_ms, s.p99, s.itl99});
    max_tps = std::max(max_tps, s.tps);
  }
  p50_->replace(p50);
  p99_->replace(p99);
  itl50_->replace(itl50);
  itl99_->replace(itl99);
  tps_->replace(tps);
  kv_->replace(kv);
  const qint64 last = h.empty() ? QDateTime::currentMSecsSinceEpoch() : h.back().t;
  const qint64 first = h.empty() ? last - 60000 : std::min(h.front().t, last - 60000);
  for (QDateTimeAxis* axis : {time_axis_, kv_time_axis_}) {
    axis->setRange(QDateTime::fromMSecsSinceEpoch(first, Qt::UTC),
                   QDateTime::fromMSecsSinceEpoch(last, Qt::UTC));
  }
  // At least 0..10 so that an idle deployment's axes read 0, 2, 4 ... rather than repeated
  // rounded fractions; nice numbers keep the tick labels whole at any scale.
  ms_axis_->setRange(0, std::max(10.0, max_ms * 1.15));
  ms_axis_->applyNiceNumbers();
  tps_axis_->setRange(0, std::max(10.0, max_tps * 1.15));
  tps_axis_->applyNiceNumbers();
}

}  // namespace sextant::ui
