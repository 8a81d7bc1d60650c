#include "ui/main_window.h"

#include <gtest/gtest.h>

#include <QLabel>

#include "engine/base/build_info.h"

namespace sextant::ui {
namespace {

TEST(MainWindow, ShowsVersionAndBackendsInStatusBar) {
  MainWindow window;
  window.show();
  auto* label = window.findChild<QLabel*>("buildLabel");
  ASSERT_NE(label, nullptr);
  const QString text = label->text();
  EXPECT_TRUE(text.contains(QString::fromStdString(GetBuildInfo().version))) << text.toStdString();
  EXPECT_TRUE(text.contains("backends: cpu")) << text.toStdString();
  EXPECT_TRUE(window.windowTitle().startsWith("Sextant"));
  // It renders: a grab of the window has the window's size and is not blank.
  const QImage image = window.grab().toImage();
  EXPECT_EQ(image.size(), window.size());
}

}  // namespace
}  // namespace sextant::ui
