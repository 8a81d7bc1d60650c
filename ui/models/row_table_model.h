// RowTableModel: a flat table of rendered rows (the "render" step: a pure function turns domain
// values into RenderedRow, the model only holds and diffs them). SetRows keeps selections and
// scroll positions alive across refreshes: when the row keys are unchanged it emits one
// dataChanged over the table, otherwise it resets.
//
// Roles: Qt::DisplayRole, Qt::ToolTipRole, Qt::ForegroundRole, Qt::BackgroundRole,
// Qt::TextAlignmentRole, and the custom roles below (SortRole holds the raw number or text the
// proxies sort on, KeyRole the row's key, StateRole the row's state word).
//
// Thread-safety: a QObject of the GUI thread; call everything there.
#pragma once

#include <QAbstractTableModel>
#include <QColor>
#include <QString>
#include <QStringList>
#include <QVariant>
#include <QVector>

namespace sextant::ui {

enum ModelRole {
  SortRole = Qt::UserRole + 1,
  KeyRole,
  StateRole,
  KindRole,
  SinceRole,
};

struct RenderedRow {
  QString key;    // stable identity of the row (target/deployment ...)
  QString state;  // "connected", "stale", "error", "pass", ... (StateRole)
  QVector<QVariant> display;
  QVector<QVariant> sort;        // empty entries fall back to display
  QVector<QVariant> tooltip;     // optional, per column
  QVector<QVariant> background;  // optional, per column (QColor)
  QVariant foreground;           // optional, for the whole row (QColor)
  bool bold = false;

  // A row with `columns` empty cells in every per-column vector.
  static RenderedRow Sized(const QString& key, int columns) {
    RenderedRow r;
    r.key = key;
    r.display.resize(columns);
    r.sort.resize(columns);
    r.tooltip.resize(columns);
    r.background.resize(columns);
    return r;
  }
};

class RowTableModel : public QAbstractTableModel {
 public:
  explicit RowTableModel(QStringList headers, QObject* parent = nullptr);

  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;

  // Replaces the rows (each must have one display value per column).
  void SetRows(QVector<RenderedRow> rows);
  const QVector<RenderedRow>& rows() const { return rows_; }
  // The row with this key, or -1.
  int RowOfKey(const QString& key) const;
  void SetHeaderToolTips(QStringList tips) { header_tips_ = std::move(tips); }

 protected:
  // For subclasses whose columns change with the data (the compliance matrix).
  void SetHeadersAndRows(QStringList headers, QVector<RenderedRow> rows);

 private:
  QStringList headers_;
  QStringList header_tips_;
  QVector<RenderedRow> rows_;
};

// Formatting shared by the renderers.
QString FormatBytes(int64_t bytes);
QString FormatMs(double ms);
QString FormatPercent(double fraction);  // 0.423 -> "42 %"
QString FormatTimeMs(int64_t ms);        // RFC 3339 UTC, "" for 0
QString FormatUsd(double usd);
QColor UtilizationColor(double utilization);  // green (idle) to red (saturated), translucent

}  // namespace sextant::ui
