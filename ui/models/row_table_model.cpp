#include "ui/models/row_table_model.h"

#include <QDateTime>
#include <QFont>
#include <algorithm>

#include "engine/base/time.h"

namespace sextant::ui {

RowTableModel::RowTableModel(QStringList headers, QObject* parent)
    : QAbstractTableModel(parent), headers_(std::move(headers)) {}

int RowTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(rows_.size());
}

int RowTableModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(headers_.size());
}

QVariant RowTableModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) {
    return {};
  }
  const RenderedRow& row = rows_[index.row()];
  const int c = index.column();
  auto at = [c](const QVector<QVariant>& v) { return c < v.size() ? v[c] : QVariant(); };
  switch (role) {
    case Qt::DisplayRole:
      return at(row.display);
    case Qt::ToolTipRole:
      return at(row.tooltip);
    case Qt::BackgroundRole:
      return at(row.background);
    case Qt::ForegroundRole:
      return row.foreground;
    case Qt::FontRole:
      if (row.bold) {
        QFont f;
        f.setBold(true);
        return f;
      }
      return {};
    case Qt::TextAlignmentRole: {
      const QVariant v = at(row.sort);
      if (v.isValid() && v.typeId() != QMetaType::QString) {
        return QVariant::fromValue(Qt::Alignment(Qt::AlignRight | Qt::AlignVCenter));
      }
      return {};
    }
    case SortRole: {
      const QVariant v = at(row.sort);
      return v.isValid() ? v : at(row.display);
    }
    case KeyRole:
      return row.key;
    case StateRole:
      return row.state;
    default:
      return {};
  }
}

QVariant RowTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || section < 0 || section >= headers_.size()) {
    return QAbstractTableModel::headerData(section, orientation, role);
  }
  if (role == Qt::DisplayRole) return headers_[section];
  if (role == Qt::ToolTipRole && section < header_tips_.size()) return header_tips_[section];
  return {};
}

void RowTableModel::SetRows(QVector<RenderedRow> rows) {
  for (auto& r : rows) r.display.resize(headers_.size());
  bool same = rows.size() == rows_.size();
  for (qsizetype i = 0; same && i < rows.size(); ++i) same = rows[i].key == rows_[i].key;
  if (!same) {
    beginResetModel();
    rows_ = std::move(rows);
    endResetModel();
    return;
  }
  rows_ = std::move(rows);
  if (!rows_.isEmpty() && !headers_.isEmpty()) {
    emit dataChanged(index(0, 0), index(static_cast<int>(rows_.size()) - 1,
                                        static_cast<int>(headers_.size()) - 1));
  }
}

void RowTableModel::SetHeadersAndRows(QStringList headers, QVector<RenderedRow> rows) {
  if (headers == headers_) {
    SetRows(std::move(rows));
    return;
  }
  beginResetModel();
  headers_ = std::move(headers);
  for (auto& r : rows) r.display.resize(headers_.size());
  rows_ = std::move(rows);
  endResetModel();
}

int RowTableModel::RowOfKey(const QString& key) const {
  for (qsizetype i = 0; i < rows_.size(); ++i) {
    if (rows_[i].key == key) return static_cast<int>(i);
  }
  return -1;
}

QString FormatBytes(int64_t bytes) {
  const double gib = static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
  if (gib >= 1.0) return QString::number(gib, 'f', 1) + " GiB";
  return QString::number(static_cast<double>(bytes) / (1024.0 * 1024.0), 'f', 0) + " MiB";
}

QString FormatMs(double ms) { return QString::number(ms, 'f', ms < 10 ? 2 : 1) + " ms"; }

QString FormatPercent(double fraction) { return QString::number(fraction * 100, 'f', 0) + " %"; }

QString FormatTimeMs(int64_t ms) {
  if (ms <= 0) return {};
  return QString::fromStdString(FormatRfc3339(ms));
}

QString FormatUsd(double usd) { return "$" + QString::number(usd, 'f', 2); }

QColor UtilizationColor(double utilization) {
  const double u = std::clamp(utilization, 0.0, 1.0);
  // Hue 120 (green) at 0 down to 0 (red) at 1; translucent so text stays readable in both
  // light and dark palettes.
  return QColor::fromHsvF(static_cast<float>((1.0 - u) * 120.0 / 360.0), 0.75F, 0.9F, 0.45F);
}

}  // namespace sextant::ui
