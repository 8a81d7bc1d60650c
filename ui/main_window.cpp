#include "ui/main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDateTime>
#include <QDir>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QIcon>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenuBar>
#include <QMessageBox>
#include <QSettings>
#include <QSplitter>
#include <QStackedWidget>
#include <QStatusBar>
#include <QString>

#include "engine/base/build_info.h"

// Q_INIT_RESOURCE declares a function: it must be used at global scope (the resources live in
// the static sextant_ui library, so they are registered explicitly).
static void InitSextantResources() { Q_INIT_RESOURCE(sextant); }

namespace sextant::ui {

namespace {

struct ViewInfo {
  const char* name;
  const char* title;
  const char* icon;
};
constexpr ViewInfo kViews[] = {
    {"fleet", "Fleet", ":/icons/fleet.png"},
    {"deployments", "Deployments", ":/icons/deployments.png"},
    {"validate", "Validate && push", ":/icons/validate.png"},
    {"cost", "Cost", ":/icons/cost.png"},
    {"compliance", "Compliance", ":/icons/compliance.png"},
    {"audit", "Audit", ":/icons/audit.png"},
    {"targets", "Targets", ":/icons/targets.png"},
};

}  // namespace

MainWindow::MainWindow(QWidget* parent)
    : MainWindow(MainWindowOptions{nullptr, nullptr, 1000, {}, {}, false}, parent) {}

MainWindow::MainWindow(MainWindowOptions options, QWidget* parent)
    : QMainWindow(parent), options_(std::move(options)) {
  InitSextantResources();
  runner_ = new ActionRunner(this);
  ctx_.runner = runner_;
  ctx_.actions = options_.actions;
  ctx_.default_spec = options_.default_spec;
  ctx_.default_model_dir = options_.default_model_dir;
  ctx_.confirm = [this](const QString& title, const QString& text) {
    return QMessageBox::question(this, title, text, QMessageBox::Yes | QMessageBox::Cancel,
                                 QMessageBox::Cancel) == QMessageBox::Yes;
  };
  ctx_.save_file = [this](const QString& title, const QString& suggested, const QString& filter) {
    return QFileDialog::getSaveFileName(this, title, QDir::home().filePath(suggested), filter);
  };
  Build();
  if (options_.load) {
    loader_ = new SnapshotLoader(options_.load, options_.refresh_ms, this);
    connect(loader_, &SnapshotLoader::SnapshotReady, this, &MainWindow::ApplySnapshot);
    connect(loader_, &SnapshotLoader::LoadFailed, this,
            [this](const QString& message) { refresh_label_->setText("store error: " + message); });
    ctx_.request_refresh = [this] { loader_->Request(); };
    loader_->Start();
  }
  if (options_.remember_layout) RestoreLayout();
}

MainWindow::~MainWindow() = default;

QStringList MainWindow::ViewNames() {
  QStringList names;
  for (const auto& v : kViews) names << v.name;
  return names;
}

void MainWindow::Build() {
  const BuildInfo& info = GetBuildInfo();
  setObjectName("mainWindow");
  setWindowTitle(QString("Sextant %1").arg(QString::fromStdString(info.version)));
  setWindowIcon(QIcon(":/icons/sextant.png"));

  auto* central = new QSplitter(Qt::Horizontal, this);
  central->setObjectName("mainSplitter");
  nav_ = new QListWidget(central);
  nav_->setObjectName("viewList");
  nav_->setIconSize(QSize(20, 20));
  nav_->setMaximumWidth(220);
  stack_ = new QStackedWidget(central);
  stack_->setObjectName("viewStack");
  views_ = {new FleetView(&ctx_, stack_),      new DeploymentsView(&ctx_, stack_),
            new ValidateView(&ctx_, stack_),   new CostView(&ctx_, stack_),
            new ComplianceView(&ctx_, stack_), new AuditView(&ctx_, stack_),
            new TargetsView(&ctx_, stack_)};
  auto* view_menu = menuBar()->addMenu("&View");
  for (int i = 0; i < views_.size(); ++i) {
    stack_->addWidget(views_[i]);
    auto* item = new QListWidgetItem(QIcon(kViews[i].icon),
                                     QString(kViews[i].title).replace("&&", "&"), nav_);
    item->setToolTip(QString("%1 (Ctrl+%2)").arg(item->text()).arg(i + 1));
    auto* action = view_menu->addAction(QIcon(kViews[i].icon), kViews[i].title);
    action->setObjectName(QString("show_%1").arg(kViews[i].name));
    action->setShortcut(QKeySequence(QString("Ctrl+%1").arg(i + 1)));
    connect(action, &QAction::triggered, this, [this, i] { nav_->setCurrentRow(i); });
  }
  central->addWidget(nav_);
  central->addWidget(stack_);
  central->setStretchFactor(1, 1);
  setCentralWidget(central);
  connect(nav_, &QListWidget::currentRowChanged, this, [this](int row) {
    if (row < 0 || row >= views_.size()) return;
    stack_->setCurrentIndex(row);
    views_[row]->Activated();
  });

  view_menu->addSeparator();
  auto* refresh = view_menu->addAction("&Refresh");
  refresh->setObjectName("refreshAction");
  refresh->setShortcut(QKeySequence::Refresh);
  connect(refresh, &QAction::triggered, this, [this] {
    if (loader_) loader_->Request();
  });
  auto* find = view_menu->addAction("&Find");
  find->setObjectName("findAction");
  find->setShortcut(QKeySequence::Find);
  connect(find, &QAction::triggered, this, [this] {
    for (auto* edit : stack_->currentWidget()->findChildren<QLineEdit*>()) {
      if (edit->objectName().endsWith("Filter")) {
        edit->setFocus();
        edit->selectAll();
        return;
      }
    }
  });
  auto* quit = menuBar()->addMenu("&File")->addAction("&Quit");
  quit->setShortcut(QKeySequence::Quit);
  connect(quit, &QAction::triggered, this, &QWidget::close);
  auto* keys = menuBar()->addMenu("&Help")->addAction("&Keyboard shortcuts");
  keys->setShortcut(QKeySequence::HelpContents);
  connect(keys, &QAction::triggered, this, [this] {
    QMessageBox::information(
        this, "Keyboard shortcuts",
        "Ctrl+1…7  switch view (Fleet, Deployments, Validate & push, Cost, Compliance, Audit, "
        "Targets)\nF5  refresh now\nCtrl+F  filter the current view\nCtrl+Return  validate\n"
        "Esc  cancel the validation\nCtrl+Shift+P  push\nCtrl+E  export cost CSV\n"
        "Ctrl+Shift+E  export compliance PDF\nCtrl+R  fetch audit records\nCtrl+N / Ctrl+T / "
        "Delete  add / test / remove a target\nCtrl+Q  quit");
  });

  build_label_ = new QLabel(QString::fromStdString(info.VersionLine("sextant")), this);
  build_label_->setObjectName("buildLabel");
  refresh_label_ = new QLabel(options_.load ? "loading…" : "no console store", this);
  refresh_label_->setObjectName("refreshLabel");
  statusBar()->addWidget(refresh_label_, 1);
  statusBar()->addPermanentWidget(build_label_);
  resize(1280, 800);
  nav_->setCurrentRow(0);
}

void MainWindow::ShowView(const QString& name) {
  const int i = static_cast<int>(ViewNames().indexOf(name));
  if (i >= 0) nav_->setCurrentRow(i);
}

QString MainWindow::CurrentView() const {
  const int i = nav_->currentRow();
  return i >= 0 && i < views_.size() ? ViewNames()[i] : QString();
}

ConsoleView* MainWindow::View(const QString& name) const {
  const int i = static_cast<int>(ViewNames().indexOf(name));
  return i >= 0 ? views_[i] : nullptr;
}

void MainWindow::ApplySnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  for (ConsoleView* v : views_) v->SetSnapshot(snapshot);
  if (snapshot) {
    int connected = 0, total = 0;
    for (const auto& a : snapshot->fleet.accounts) {
      for (const auto& t : a.targets) {
        ++total;
        connected += t.status.state == console::ConnState::kConnected ? 1 : 0;
      }
    }
    refresh_label_->setText(
        QString("%1/%2 targets connected · updated %3 UTC")
            .arg(connected)
            .arg(total)
            .arg(QDateTime::fromMSecsSinceEpoch(snapshot->taken_at, Qt::UTC).toString("HH:mm:ss")));
  }
}

Result<QStringList> MainWindow::SaveScreenshots(const QString& dir) {
  if (!QDir().mkpath(dir)) return Status::Internal("cannot create " + dir.toStdString());
  const QString before = CurrentView();
  QStringList files;
  for (const QString& name : ViewNames()) {
    ShowView(name);
    QApplication::processEvents();
    const QString file = QDir(dir).filePath(name + ".png");
    if (!grab().save(file, "PNG")) {
      return Status::Internal("cannot write " + file.toStdString());
    }
    files << file;
  }
  ShowView(before);
  return files;
}

void MainWindow::SaveLayout() {
  QSettings s;
  s.beginGroup("mainWindow");
  s.setValue("geometry", saveGeometry());
  s.setValue("state", saveState());
  s.setValue("view", CurrentView());
  for (auto* split : findChildren<QSplitter*>()) {
    if (!split->objectName().isEmpty())
      s.setValue("splitter/" + split->objectName(), split->saveState());
  }
  s.endGroup();
}

void MainWindow::RestoreLayout() {
  QSettings s;
  s.beginGroup("mainWindow");
  if (s.contains("geometry")) restoreGeometry(s.value("geometry").toByteArray());
  if (s.contains("state")) restoreState(s.value("state").toByteArray());
  for (auto* split : findChildren<QSplitter*>()) {
    const QString key = "splitter/" + split->objectName();
    if (!split->objectName().isEmpty() && s.contains(key))
      split->restoreState(s.value(key).toByteArray());
  }
  const QString view = s.value("view").toString();
  if (!view.isEmpty()) ShowView(view);
  s.endGroup();
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (options_.remember_layout) SaveLayout();
  QMainWindow::closeEvent(event);
}

}  // namespace sextant::ui
