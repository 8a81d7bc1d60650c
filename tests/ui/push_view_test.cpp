// The Validate & push view pushing to real agents (in-process AgentServers over mutual TLS on
// 127.0.0.1, each re-running the validation on the real engine with its own copy of
// stories260K): the per-target rows go through their states canary first, end with each
// target's result and generation, and a target that refuses shows why.
#include <gtest/gtest.h>

#include <QComboBox>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QTableWidget>
#include <QTest>
#include <algorithm>
#include <fstream>
#include <map>
#include <utility>
#include <vector>

#include "app/sextant/gui_actions.h"
#include "tests/connectors/console/push_test_fleet.h"
#include "tests/ui/console_fixture.h"
#include "ui/main_window.h"

namespace sextant::ui {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using pushtest::TinyModel;

class PushViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(TinyModel())) {
      GTEST_SKIP() << "needs " << TinyModel() << " (../shared/models)";
    }
    fleet_ = std::make_unique<pushtest::LocalFleet>(testing::ScratchDir("push") / "fleet");
    ASSERT_TRUE(fleet_->Init(TinyModel()).ok());
    ASSERT_TRUE(fleet_->StartAgents(3).ok());
  }
  void TearDown() override {
    window_.reset();
    actions_.reset();
    fleet_.reset();
  }

  void OpenConsole(const fs::path& spec) {
    cli::GuiActionOptions ao;
    ao.signing_key = fleet_->key_path();
    ao.call_deadline = 20000ms;
    actions_ = std::make_shared<cli::ConnectorConsoleActions>(&fleet_->store(), nullptr, ao);
    MainWindowOptions wo;
    wo.actions = actions_;
    auto sources = testing::TestSources();
    auto* st = &fleet_->store();
    wo.load = [st, sources] { return LoadConsoleSnapshot(*st, sources, console::NowMs()); };
    wo.refresh_ms = 200;
    wo.remember_layout = false;
    wo.default_spec = QString::fromStdString(spec.string());
    window_ = std::make_unique<MainWindow>(std::move(wo));
    window_->context().confirm = [](const QString&, const QString&) { return true; };
    window_->show();
    window_->ShowView("validate");
    view_ = static_cast<ValidateView*>(window_->View("validate"));
    table_ = window_->findChild<QTableWidget*>("pushProgress");
    ASSERT_NE(table_, nullptr);
    // Every state a row shows, in the order shown, across all rows.
    QObject::connect(table_, &QTableWidget::itemChanged, table_, [this](QTableWidgetItem* item) {
      if (item->column() != ValidateView::kPushState) return;
      const QTableWidgetItem* target = table_->item(item->row(), ValidateView::kPushTarget);
      if (target == nullptr || target->text().isEmpty()) return;
      const std::string t = target->text().toStdString();
      const std::string state = item->text().toStdString();
      auto& seen = states_[t];
      if (seen.empty() || seen.back() != state) {
        seen.push_back(state);
        log_.emplace_back(t, state);
      }
    });
    auto* targets = window_->findChild<QListWidget*>("pushTargets");
    ASSERT_TRUE(QTest::qWaitFor([&] { return targets->count() == 3; }, 10000));
  }

  // Pushes with `canary` first and waits (bounded) for the push to end.
  void Push(const QString& canary) {
    states_.clear();
    log_.clear();
    auto* combo = window_->findChild<QComboBox*>("canaryTarget");
    const int i = combo->findText(canary);
    ASSERT_GE(i, 0);
    combo->setCurrentIndex(i);
    QTest::mouseClick(window_->findChild<QPushButton*>("pushButton"), Qt::LeftButton);
    ASSERT_TRUE(view_->pushing());
    ASSERT_TRUE(QTest::qWaitFor([&] { return !view_->pushing(); }, 180000));
  }

  int RowOf(const std::string& target) {
    for (int r = 0; r < table_->rowCount(); ++r) {
      if (table_->item(r, ValidateView::kPushTarget)->text().toStdString() == target) return r;
    }
    return -1;
  }
  QString Cell(const std::string& target, int column) {
    const int r = RowOf(target);
    return r < 0 ? QString("<no row>") : table_->item(r, column)->text();
  }
  // Position of (target, state) in the shown order; -1 when never shown.
  int When(const std::string& target, const std::string& state) {
    auto it = std::find(log_.begin(), log_.end(), std::make_pair(target, state));
    return it == log_.end() ? -1 : static_cast<int>(it - log_.begin());
  }
  // True when `want` appears in order (not necessarily adjacent) in what the row showed.
  bool WentThrough(const std::string& target, const std::vector<std::string>& want) {
    const auto& seen = states_[target];
    size_t k = 0;
    for (const auto& s : seen) {
      if (k < want.size() && s == want[k]) ++k;
    }
    return k == want.size();
  }
  std::string Shown(const std::string& target) {
    std::string out;
    for (const auto& s : states_[target]) out += s + " ";
    return out;
  }
  int64_t Generation(size_t agent) {
    auto rec = fleet_->agent(agent).state->Get("tiny");
    return rec.ok() ? rec->generation : 0;
  }

  std::unique_ptr<pushtest::LocalFleet> fleet_;
  std::shared_ptr<cli::ConnectorConsoleActions> actions_;
  std::unique_ptr<MainWindow> window_;
  ValidateView* view_ = nullptr;
  QTableWidget* table_ = nullptr;
  std::map<std::string, std::vector<std::string>> states_;
  std::vector<std::pair<std::string, std::string>> log_;
};

TEST_F(PushViewTest, RowsMoveThroughTheirStatesCanaryFirstAndARefusalShowsItsCause) {
  auto v1 = fleet_->WriteAndValidate("tiny", 16);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  OpenConsole(*v1);
  auto* stage = window_->findChild<QLabel*>("validateStage");

  Push("agent-1");
  EXPECT_EQ(stage->text(), "push done");
  ASSERT_EQ(table_->rowCount(), 3);
  // The canary's row first, then one wave per target (max unavailable 1), in that order.
  EXPECT_EQ(table_->item(0, ValidateView::kPushTarget)->text(), "agent-1");
  EXPECT_EQ(Cell("agent-1", ValidateView::kPushWave), "canary");
  EXPECT_EQ(Cell("agent-0", ValidateView::kPushWave), "wave 1");
  EXPECT_EQ(Cell("agent-2", ValidateView::kPushWave), "wave 2");
  for (const std::string t : {"agent-0", "agent-1", "agent-2"}) {
    EXPECT_TRUE(WentThrough(t, {"pending", "applying", "validating", "done"}))
        << t << ": " << Shown(t);
    EXPECT_EQ(Cell(t, ValidateView::kPushState), "done");
    EXPECT_EQ(Cell(t, ValidateView::kPushGeneration), "1 (new)") << t;
    EXPECT_EQ(Cell(t, ValidateView::kPushMessage), "exact (cpu): match") << t;
  }
  // Canary first: the waves start only once the canary is done.
  ASSERT_GE(When("agent-1", "done"), 0);
  EXPECT_LT(When("agent-1", "done"), When("agent-0", "applying"));
  EXPECT_LT(When("agent-0", "done"), When("agent-2", "applying"));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(Generation(i), 1) << i;

  // agent-2's copy of the model changes by one byte: it refuses the next push, and the rollout
  // returns the targets it changed to their previous generation.
  const fs::path copy = fleet_->agent(2).model_store / TinyModel().filename();
  {
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    const auto mid = static_cast<std::streamoff>(fs::file_size(copy) / 2);
    f.seekg(mid);
    char c = 0;
    f.read(&c, 1);
    f.seekp(mid);
    c = static_cast<char>(c ^ 1);
    f.write(&c, 1);
  }
  auto v2 = fleet_->WriteAndValidate("tiny", 18);
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  window_->findChild<QLineEdit*>("specPath")->setText(QString::fromStdString(v2->string()));
  Push("agent-0");
  EXPECT_TRUE(stage->text().startsWith("push stopped:")) << stage->text().toStdString();
  EXPECT_TRUE(stage->text().contains("agent-2 refused")) << stage->text().toStdString();
  EXPECT_TRUE(WentThrough("agent-2", {"pending", "applying", "refused"})) << Shown("agent-2");
  EXPECT_EQ(Cell("agent-2", ValidateView::kPushState), "refused");
  // What the agent tells the console: the model is not available (the cause is the customer's).
  EXPECT_TRUE(Cell("agent-2", ValidateView::kPushMessage).contains("model not available"))
      << Cell("agent-2", ValidateView::kPushMessage).toStdString();
  EXPECT_EQ(Cell("agent-2", ValidateView::kPushGeneration), "1");  // untouched
  for (const std::string t : {"agent-0", "agent-1"}) {
    EXPECT_TRUE(WentThrough(t, {"pending", "applying", "validating", "done", "rolled-back"}))
        << t << ": " << Shown(t);
    EXPECT_EQ(Cell(t, ValidateView::kPushState), "rolled-back");
    // v2 was generation 2; v1 again is generation 3.
    EXPECT_EQ(Cell(t, ValidateView::kPushGeneration), "3 (was 1)") << t;
  }
  EXPECT_EQ(Generation(0), 3);
  EXPECT_EQ(Generation(1), 3);
  EXPECT_EQ(Generation(2), 1);
}

}  // namespace
}  // namespace sextant::ui
