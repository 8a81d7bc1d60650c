// main() for the Qt tests: one QApplication for the whole run (QT_QPA_PLATFORM=offscreen is set
// by CTest and defaulted here), settings in a scratch folder, then GoogleTest.
#include <gtest/gtest.h>
#include <unistd.h>

#include <QApplication>
#include <QDir>
#include <QSettings>
#include <QStandardPaths>

int main(int argc, char** argv) {
  // CTest sets QT_QPA_PLATFORM=offscreen; test discovery and manual runs get the same default.
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  // Window layouts the tests save never reach the user's settings.
  QApplication::setOrganizationName("SextantTest");
  QApplication::setApplicationName("ui_tests");
  const QString settings = QDir::temp().filePath(QString("sextant_ui_settings_%1").arg(::getpid()));
  QSettings::setDefaultFormat(QSettings::IniFormat);
  QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, settings);
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  QDir(settings).removeRecursively();
  return rc;
}
