// The desktop console's main window: a navigation list and one view per task (Fleet,
// Deployments, Validate & push, Cost, Compliance, Audit, Targets), fed by a SnapshotLoader that
// reads the console store off the GUI thread, with actions that need the wire run through an
// ActionRunner. Ctrl+1..7 switch views, F5 refreshes, Ctrl+F finds in the current view, F1 lists
// the shortcuts. Geometry, splitters and the last view are kept in QSettings.
//
// Thread-safety: a QWidget; GUI thread only.
#pragma once

#include <QMainWindow>
#include <QStringList>
#include <memory>

#include "ui/action_runner.h"
#include "ui/console_actions.h"
#include "ui/snapshot_loader.h"
#include "ui/views/views.h"

class QLabel;
class QListWidget;
class QStackedWidget;

namespace sextant::ui {

struct MainWindowOptions {
  std::shared_ptr<ConsoleActions> actions;  // null: wire actions disabled, with the reason
  SnapshotLoader::LoadFn load;              // null: no live data
  int refresh_ms = 1000;
  QString default_spec;
  QString default_model_dir;
  bool remember_layout = true;  // QSettings: restore at start, save on close
};

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  explicit MainWindow(MainWindowOptions options, QWidget* parent = nullptr);
  ~MainWindow() override;

  // View names, in navigation order: fleet, deployments, validate, cost, compliance, audit,
  // targets. The view widget's objectName is name + "View".
  static QStringList ViewNames();
  void ShowView(const QString& name);
  QString CurrentView() const;
  ConsoleView* View(const QString& name) const;

  // Feeds every view (the loader does this on each refresh; tests may call it directly).
  void ApplySnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot);
  SnapshotLoader* loader() const { return loader_; }
  ActionRunner* runner() const { return runner_; }
  ViewContext& context() { return ctx_; }

  // Renders every view with its current data to DIR/<name>.png. Returns the files written.
  Result<QStringList> SaveScreenshots(const QString& dir);

  void SaveLayout();
  void RestoreLayout();

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  void Build();
  ActionRunner* runner_ = nullptr;  // first child: destroyed before the views
  SnapshotLoader* loader_ = nullptr;
  MainWindowOptions options_;
  ViewContext ctx_;
  QListWidget* nav_ = nullptr;
  QStackedWidget* stack_ = nullptr;
  QVector<ConsoleView*> views_;
  QLabel* build_label_ = nullptr;
  QLabel* refresh_label_ = nullptr;
};

}  // namespace sextant::ui
