// main() for the Qt tests: one QApplication for the whole run (QT_QPA_PLATFORM=offscreen is set
// by CTest and defaulted here), then GoogleTest.
#include <gtest/gtest.h>

#include <QApplication>

int main(int argc, char** argv) {
  // CTest sets QT_QPA_PLATFORM=offscreen; test discovery and manual runs get the same default.
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
