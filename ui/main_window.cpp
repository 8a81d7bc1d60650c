#include "ui/main_window.h"

#include <QLabel>
#include <QStatusBar>
#include <QString>

#include "engine/base/build_info.h"

namespace sextant::ui {

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  const BuildInfo& info = GetBuildInfo();
  setObjectName("mainWindow");
  setWindowTitle(QString("Sextant %1").arg(QString::fromStdString(info.version)));
  build_label_ = new QLabel(QString::fromStdString(info.VersionLine("sextant")), this);
  build_label_->setObjectName("buildLabel");
  statusBar()->addPermanentWidget(build_label_);
  resize(1280, 800);
}

}  // namespace sextant::ui
