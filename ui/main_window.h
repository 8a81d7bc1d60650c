// The desktop console's main window.
// Thread-safety: a QWidget; GUI thread only.
#pragma once

#include <QMainWindow>

class QLabel;

namespace sextant::ui {

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);

 private:
  QLabel* build_label_ = nullptr;
};

}  // namespace sextant::ui
