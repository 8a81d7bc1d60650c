// The main window on a real console store: every view shows the store's data (checked through
// the widgets by object name), shortcuts switch views, the layout and last view are remembered,
// loading never runs on the GUI thread, and exports and screenshots write what they say.
#include "ui/main_window.h"

#include <gtest/gtest.h>

#include <QAction>
#include <QFile>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QListWidget>
#include <QSignalSpy>
#include <QTableView>
#include <QTest>
#include <QTextEdit>
#include <QThread>
#include <QTimer>
#include <QTreeView>
#include <future>

#include "engine/base/build_info.h"
#include "tests/ui/console_fixture.h"

namespace sextant::ui {
namespace {

using testing::FillStore;
using testing::ScratchDir;
using testing::TestSources;

TEST(MainWindow, ShowsVersionAndBackendsInStatusBar) {
  MainWindow window;
  window.show();
  auto* label = window.findChild<QLabel*>("buildLabel");
  ASSERT_NE(label, nullptr);
  const QString text = label->text();
  EXPECT_TRUE(text.contains(QString::fromStdString(GetBuildInfo().version))) << text.toStdString();
  EXPECT_TRUE(text.contains("backends: cpu")) << text.toStdString();
  EXPECT_TRUE(window.windowTitle().startsWith("Sextant"));
  const QImage image = window.grab().toImage();
  EXPECT_EQ(image.size(), window.size());
  // Without a connection, the actions that need one are disabled and say why.
  auto* validate = window.findChild<QWidget*>("validateButton");
  ASSERT_NE(validate, nullptr);
  EXPECT_FALSE(validate->isEnabled());
  EXPECT_TRUE(validate->toolTip().contains("not available"));
}

class MainWindowStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ScratchDir("window");
    auto st = console::ConsoleDatabase::Open(dir_ / "state");
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = std::move(st).value();
    FillStore(*store_, console::NowMs());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  MainWindowOptions Options(bool remember = false) {
    MainWindowOptions o;
    auto* st = store_.get();
    auto sources = TestSources();
    o.load = [st, sources] { return LoadConsoleSnapshot(*st, sources, console::NowMs()); };
    o.refresh_ms = 200;
    o.remember_layout = remember;
    return o;
  }
  static bool WaitForSnapshot(MainWindow& w) {
    return QTest::qWaitFor([&] { return w.loader()->latest() != nullptr; }, 10000);
  }

  std::filesystem::path dir_;
  std::unique_ptr<console::ConsoleDatabase> store_;
};

TEST_F(MainWindowStoreTest, ViewsShowTheStoresDataAndShortcutsSwitchViews) {
  MainWindow window(Options());
  window.show();
  ASSERT_TRUE(QTest::qWaitForWindowExposed(&window));
  ASSERT_TRUE(WaitForSnapshot(window));

  auto* tree = window.findChild<QTreeView*>("fleetTree");
  ASSERT_NE(tree, nullptr);
  EXPECT_EQ(tree->model()->rowCount(), 3);  // three accounts (one is "(none)")
  auto* summary = window.findChild<QLabel*>("fleetSummary");
  EXPECT_TRUE(
      summary->text().startsWith("3 targets · 1 connected · 1 stale · 1 unreachable · 3 GPUs"))
      << summary->text().toStdString();

  auto* deployments = window.findChild<QTableView*>("deploymentsTable");
  ASSERT_NE(deployments, nullptr);
  EXPECT_EQ(deployments->model()->rowCount(), 2);
  // The detail pane follows the selected deployment: latency, inter-token latency, KV cache.
  auto* dv = static_cast<DeploymentsView*>(window.View("deployments"));
  dv->Select("eu1/chat");
  const QList<QPointF> itl = dv->SeriesPoints("ITL p50 (ms)");
  ASSERT_FALSE(itl.isEmpty());
  EXPECT_DOUBLE_EQ(itl.back().y(), 12.0);
  EXPECT_DOUBLE_EQ(dv->SeriesPoints("ITL p99 (ms)").back().y(), 30.0);
  const QList<QPointF> kv = dv->SeriesPoints("KV cache use (%)");
  ASSERT_FALSE(kv.isEmpty());
  EXPECT_NEAR(kv.back().y(), 42.0, 1e-9);
  EXPECT_EQ(kv.size(), dv->ChartPoints());
  auto* detail = window.findChild<QLabel*>("deploymentDetail");
  EXPECT_TRUE(detail->text().contains("ITL p50 12.0 ms")) << detail->text().toStdString();
  EXPECT_TRUE(detail->text().contains("KV cache 42 %")) << detail->text().toStdString();
  auto* costs = window.findChild<QTableView*>("costTable");
  EXPECT_GE(costs->model()->rowCount(), 3);  // two deployments and the total
  auto* matrix = window.findChild<QTableView*>("complianceMatrix");
  EXPECT_EQ(matrix->model()->rowCount(), 3);
  auto* targets = window.findChild<QTableView*>("targetsTable");
  EXPECT_EQ(targets->model()->rowCount(), 3);

  // Ctrl+N switches to the N-th view.
  window.activateWindow();
  ASSERT_TRUE(QTest::qWaitForWindowActive(&window));
  QTest::keyClick(&window, Qt::Key_4, Qt::ControlModifier);
  EXPECT_EQ(window.CurrentView(), "cost");
  QTest::keyClick(&window, Qt::Key_7, Qt::ControlModifier);
  EXPECT_EQ(window.CurrentView(), "targets");
  auto* list = window.findChild<QListWidget*>("viewList");
  EXPECT_EQ(list->currentRow(), 6);
  // Ctrl+F in the fleet view focuses its filter, and the filter narrows the tree.
  QTest::keyClick(&window, Qt::Key_1, Qt::ControlModifier);
  QTest::keyClick(&window, Qt::Key_F, Qt::ControlModifier);
  auto* filter = window.findChild<QWidget*>("fleetFilter");
  EXPECT_TRUE(filter->hasFocus());
  QTest::keyClicks(filter, "us1");
  EXPECT_EQ(tree->model()->rowCount(), 1);

  // Compliance evidence follows the selection.
  window.ShowView("compliance");
  matrix->setCurrentIndex(matrix->model()->index(0, 1));
  auto* evidence = window.findChild<QTextEdit*>("complianceEvidence");
  EXPECT_FALSE(evidence->toPlainText().isEmpty());
}

TEST_F(MainWindowStoreTest, SnapshotsLoadOffTheGuiThreadWhileTheGuiKeepsServing) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<QThread*> load_thread{nullptr};
  MainWindowOptions o = Options();
  auto inner = o.load;
  o.load = [&, inner] {
    load_thread = QThread::currentThread();
    released.wait();  // a store that hangs
    return inner();
  };
  MainWindow window(o);
  // While the load hangs, the GUI thread still runs its timers; the test releases the load
  // from one of them. A load on the GUI thread would never get here.
  bool served = false;
  QTimer::singleShot(50, &window, [&] {
    served = true;
    release.set_value();
  });
  ASSERT_TRUE(WaitForSnapshot(window));
  EXPECT_TRUE(served);
  EXPECT_NE(load_thread.load(), nullptr);
  EXPECT_NE(load_thread.load(), QThread::currentThread());
}

TEST_F(MainWindowStoreTest, RemembersLayoutAndLastView) {
  {
    MainWindow window(Options(true));
    window.show();
    window.resize(1111, 777);
    window.ShowView("compliance");
    window.close();
  }
  MainWindow again(Options(true));
  EXPECT_EQ(again.CurrentView(), "compliance");
  EXPECT_EQ(again.size(), QSize(1111, 777));
}

TEST_F(MainWindowStoreTest, ScreenshotsAndExportsWriteWhatTheViewsShow) {
  MainWindow window(Options());
  window.show();
  ASSERT_TRUE(WaitForSnapshot(window));
  const QString out = QString::fromStdString((dir_ / "shots").string());
  auto files = window.SaveScreenshots(out);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_EQ(files->size(), MainWindow::ViewNames().size());
  for (const QString& f : *files) {
    QImage image(f);
    ASSERT_FALSE(image.isNull()) << f.toStdString();
    EXPECT_EQ(image.size(), window.size());
    // Not blank: many distinct colours.
    QSet<QRgb> colours;
    for (int y = 0; y < image.height(); y += 7) {
      for (int x = 0; x < image.width(); x += 7) colours.insert(image.pixel(x, y));
    }
    EXPECT_GT(colours.size(), 8) << f.toStdString();
  }

  auto* cost = static_cast<CostView*>(window.View("cost"));
  const QString csv = QString::fromStdString((dir_ / "cost.csv").string());
  ASSERT_TRUE(cost->ExportCsv(csv).ok());
  QFile c(csv);
  ASSERT_TRUE(c.open(QIODevice::ReadOnly));
  EXPECT_EQ(QString::fromUtf8(c.readAll()), cost->model()->ToCsv());

  auto* compliance = static_cast<ComplianceView*>(window.View("compliance"));
  const QString pdf = QString::fromStdString((dir_ / "c.pdf").string());
  ASSERT_TRUE(compliance->ExportPdf(pdf).ok());
  QFile p(pdf);
  ASSERT_TRUE(p.open(QIODevice::ReadOnly));
  EXPECT_TRUE(p.read(5) == "%PDF-");
  EXPECT_GT(p.size(), 2000);
  const QString json = QString::fromStdString((dir_ / "c.json").string());
  ASSERT_TRUE(compliance->ExportJson(json, false).ok());
  QFile j(json);
  ASSERT_TRUE(j.open(QIODevice::ReadOnly));
  const QJsonDocument doc = QJsonDocument::fromJson(j.readAll());
  const auto snap = window.loader()->latest();
  ASSERT_TRUE(doc.isArray());
  EXPECT_EQ(doc.array().size(), static_cast<qsizetype>(snap->findings.size()));
  const QString sarif = QString::fromStdString((dir_ / "c.sarif").string());
  ASSERT_TRUE(compliance->ExportJson(sarif, true).ok());
  QFile s(sarif);
  ASSERT_TRUE(s.open(QIODevice::ReadOnly));
  EXPECT_EQ(QJsonDocument::fromJson(s.readAll()).object().value("version").toString(), "2.1.0");
}

}  // namespace
}  // namespace sextant::ui
