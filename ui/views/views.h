// The desktop console's views. Each is a QWidget with a fixed objectName (fleetView,
// deploymentsView, validateView, costView, complianceView, auditView, targetsView); its child
// widgets have object names too, which tests and screenshots rely on. Views read item models
// (ui/models) fed by ConsoleSnapshots and call ConsoleActions only through the ActionRunner, so
// nothing they do blocks the GUI thread.
//
// Thread-safety: GUI thread only.
#pragma once

#include <QHash>
#include <QList>
#include <QPointF>
#include <QPointer>
#include <QString>
#include <QVector>
#include <QWidget>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>

#include "ui/action_runner.h"
#include "ui/console_actions.h"
#include "ui/console_snapshot.h"
#include "ui/models/fleet_tree_model.h"
#include "ui/models/table_models.h"

class QChart;
class QChartView;
class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QProgressBar;
class QPushButton;
class QSortFilterProxyModel;
class QTableView;
class QTableWidget;
class QTextEdit;
class QTreeView;
class QLineSeries;
class QDateTimeAxis;
class QValueAxis;

namespace sextant::ui {

// What every view gets from the main window.
struct ViewContext {
  ActionRunner* runner = nullptr;
  std::shared_ptr<ConsoleActions> actions;  // null: wire actions are disabled, with the reason
  // Asks the user to confirm a destructive action (tests replace it).
  std::function<bool(const QString& title, const QString& text)> confirm;
  // Asks for a file to write (tests replace it); empty: cancelled.
  std::function<QString(const QString& title, const QString& suggested, const QString& filter)>
      save_file;
  std::function<void()> request_refresh;  // reload the snapshot now
  QString default_spec;
  QString default_model_dir;
};

class ConsoleView : public QWidget {
 public:
  ConsoleView(const QString& object_name, ViewContext* ctx, QWidget* parent);
  virtual void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) = 0;
  // Called when the view becomes the current one.
  virtual void Activated() {}

 protected:
  ViewContext* ctx_;
  QString NoActionsReason() const;
};

class FleetView : public ConsoleView {
 public:
  FleetView(ViewContext* ctx, QWidget* parent);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) override;
  FleetTreeModel* model() const { return model_; }
  QSortFilterProxyModel* proxy() const { return proxy_; }

 private:
  FleetTreeModel* model_;
  QSortFilterProxyModel* proxy_;
  QTreeView* tree_;
  QLineEdit* filter_;
  QComboBox* state_filter_;
  QLabel* summary_;
  bool expanded_once_ = false;
};

class DeploymentsView : public ConsoleView {
 public:
  DeploymentsView(ViewContext* ctx, QWidget* parent);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) override;
  DeploymentsModel* model() const { return model_; }
  // The points the detail chart holds for the selected deployment's TTFT p50 series.
  int ChartPoints() const;
  // The points of the selected deployment's series named `name` ("TTFT p50 (ms)", "ITL p99 (ms)",
  // "tokens/s", "KV cache use (%)" ...); empty when there is no such series.
  QList<QPointF> SeriesPoints(const QString& name) const;
  void Select(const QString& key);

 private:
  struct Sample {
    qint64 t;
    double p50, p99, tps;
    int64_t queue;
    double itl50, itl99, kv;
  };
  void ShowDetail();
  DeploymentsModel* model_;
  QSortFilterProxyModel* proxy_;
  QTableView* table_;
  QLineEdit* filter_;
  QLabel* detail_;
  QChart* chart_;
  QChartView* chart_view_;
  QLineSeries* p50_;
  QLineSeries* p99_;
  QLineSeries* tps_;
  QLineSeries* itl50_;
  QLineSeries* itl99_;
  QDateTimeAxis* time_axis_;
  QValueAxis* ms_axis_;
  QValueAxis* tps_axis_;
  QChart* kv_chart_;  // KV cache use, %
  QLineSeries* kv_;
  QDateTimeAxis* kv_time_axis_;
  QString selected_;
  QHash<QString, std::deque<Sample>> history_;
};

class ValidateView : public ConsoleView {
 public:
  ValidateView(ViewContext* ctx, QWidget* parent);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) override;
  void StartValidation();
  void CancelValidation();
  void StartPush();
  void StartRollback();
  bool validating() const { return validating_; }
  bool pushing() const { return pushing_; }
  // Columns of the push progress table (object name "pushProgress").
  enum PushColumn {
    kPushTarget,
    kPushWave,
    kPushState,
    kPushGeneration,
    kPushMessage,
    kPushColumns
  };

 private:
  void SetRunning(bool validating, bool pushing);
  void ShowOutcome(const ValidationOutcome& o);
  // Adds or updates the target's row; `wave` (when not empty) is "canary" or "wave N".
  void SetPushRow(const PushProgress& p, const QString& wave = {});
  QLineEdit* spec_;
  QLineEdit* model_dir_;
  QPushButton* validate_;
  QPushButton* cancel_;
  QProgressBar* progress_;
  QLabel* stage_;
  QTextEdit* report_;
  QListWidget* targets_;
  QComboBox* canary_;
  QPushButton* push_;
  QLineEdit* rollback_deployment_;
  QPushButton* rollback_;
  QTableWidget* push_table_;
  QTableView* reports_;
  RowTableModel* reports_model_;
  std::shared_ptr<std::atomic<bool>> cancel_flag_;
  bool validating_ = false;
  bool pushing_ = false;
  int generation_ = 0;  // bumps per validation: results of an older run are ignored
};

class CostView : public ConsoleView {
 public:
  CostView(ViewContext* ctx, QWidget* parent);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) override;
  CostModel* model() const { return model_; }
  // Writes the table as CSV; the error in words on failure.
  Status ExportCsv(const QString& path) const;

 private:
  void RenderChart();
  CostModel* model_;
  QComboBox* group_;
  QTableView* table_;
  QChartView* chart_view_;
  QTableWidget* budgets_;
  QLabel* notes_;
  std::shared_ptr<const ConsoleSnapshot> snapshot_;
};

class ComplianceView : public ConsoleView {
 public:
  ComplianceView(ViewContext* ctx, QWidget* parent);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) override;
  ComplianceMatrixModel* model() const { return model_; }
  Status ExportPdf(const QString& path) const;
  Status ExportJson(const QString& path, bool sarif) const;

 private:
  void ShowEvidence();
  ComplianceMatrixModel* model_;
  QTableView* matrix_;
  QTextEdit* evidence_;
  QLabel* summary_;
};

class AuditView : public ConsoleView {
 public:
  AuditView(ViewContext* ctx, QWidget* parent);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) override;
  void Activated() override;
  // Fetches every target's audit records and chain head.
  void FetchAll();
  AuditModel* model() const { return model_; }
  AuditChainModel* chain_model() const { return chain_model_; }
  int fetches_in_flight() const { return in_flight_; }

 private:
  AuditModel* model_;
  AuditChainModel* chain_model_;
  QSortFilterProxyModel* proxy_;
  QTableView* chain_;
  QTableView* table_;
  QLineEdit* filter_;
  QPushButton* refresh_;
  QStringList targets_;
  int in_flight_ = 0;
  bool fetched_once_ = false;
};

class TargetsView : public ConsoleView {
 public:
  TargetsView(ViewContext* ctx, QWidget* parent);
  void SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) override;
  void TestSelected();
  void RemoveSelected();
  void AddTargetDialog();
  TargetsModel* model() const { return model_; }
  QString SelectedTarget() const;

 private:
  TargetsModel* model_;
  AccountsModel* accounts_model_;
  QTableView* table_;
  QTableView* accounts_;
  QLabel* result_;
  QPushButton* test_;
  QPushButton* remove_;
  QPushButton* add_;
};

}  // namespace sextant::ui
