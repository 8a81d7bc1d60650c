// `sextant gui` and the desktop console's start: the console store, a FleetConnector on its
// targets (live data), the main window with the connector-backed actions; `--screenshots DIR`
// renders each view with live data to DIR/<view>.png and exits; `--bench-seconds N` measures the
// GUI thread's event-loop latency and the process's memory under the live load.
#include "app/sextant/gui_launch.h"

#include <CLI/CLI.hpp>
#include <QApplication>
#include <QDateTime>
#include <QItemSelectionModel>
#include <QTableView>
#include <QTimer>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "app/cli/verb.h"
#include "app/console/compliance/pack.h"
#include "app/console/cost/price_catalog.h"
#include "app/sextant/console_common.h"
#include "app/sextant/gui_actions.h"
#include "connectors/console/fleet_connector.h"
#include "ui/console_snapshot.h"
#include "ui/event_loop_probe.h"
#include "ui/main_window.h"

namespace sextant::cli {

namespace {

bool DisplayAvailable() {
  const char* platform = std::getenv("QT_QPA_PLATFORM");
  if (platform != nullptr && platform[0] != '\0') return true;  // the user chose one
  const char* x = std::getenv("DISPLAY");
  const char* wayland = std::getenv("WAYLAND_DISPLAY");
  return (x != nullptr && x[0] != '\0') || (wayland != nullptr && wayland[0] != '\0');
}

void ExplainNoDisplay() {
  std::cerr << "sextant: no display found (DISPLAY and WAYLAND_DISPLAY are unset).\n"
               "  Over SSH, use the terminal UI (sextant tui) or the command-line verbs\n"
               "  (sextant --help), or set QT_QPA_PLATFORM=offscreen to run the desktop\n"
               "  console without a screen (e.g. sextant gui --screenshots DIR).\n";
}

// kB of a /proc/self/status line ("VmRSS", "VmHWM"); 0 when absent.
int64_t ProcStatusKb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::atoll(line.c_str() + key.size() + 1);
  }
  return 0;
}

// Live data is in when every target has answered (connected with samples, or failed), and the
// deployments chart has a few points to draw.
bool LiveDataReady(ui::MainWindow& w) {
  const auto& snap = w.loader() ? w.loader()->latest() : nullptr;
  if (!snap) return false;
  for (const auto& a : snap->fleet.accounts) {
    for (const auto& t : a.targets) {
      if (t.status.state == console::ConnState::kUnknown) return false;
      if (t.status.state == console::ConnState::kConnected) {
        for (const auto& d : t.deployments) {
          if (d.sampled_at == 0) return false;
        }
      }
    }
  }
  auto* deployments = static_cast<ui::DeploymentsView*>(w.View("deployments"));
  return deployments->model()->rowCount() == 0 || deployments->ChartPoints() >= 3;
}

// Puts something worth seeing in each view before it is captured: the first deployment, the
// first failing (else first) compliance cell, the audit records.
void PrepareForScreenshots(ui::MainWindow& w) {
  auto* compliance = w.View("compliance");
  if (auto* matrix = compliance->findChild<QTableView*>("complianceMatrix")) {
    QAbstractItemModel* m = matrix->model();
    QModelIndex pick;
    for (int r = 0; r < m->rowCount() && !pick.isValid(); ++r) {
      for (int c = 1; c < m->columnCount(); ++c) {
        if (m->index(r, c).data().toString() == "fail") {
          pick = m->index(r, c);
          break;
        }
      }
    }
    if (!pick.isValid() && m->rowCount() > 0 && m->columnCount() > 1) pick = m->index(0, 1);
    if (pick.isValid()) matrix->setCurrentIndex(pick);
  }
}

int RunScreenshots(QApplication& app, ui::MainWindow& window, const GuiLaunchOptions& o) {
  int rc = 1;
  auto* audit = static_cast<ui::AuditView*>(window.View("audit"));
  const qint64 started = QDateTime::currentMSecsSinceEpoch();
  bool audit_started = false;
  QTimer poll;
  poll.setInterval(100);
  QObject::connect(&poll, &QTimer::timeout, &window, [&] {
    const qint64 waited = QDateTime::currentMSecsSinceEpoch() - started;
    const bool timed_out = waited > o.screenshot_wait_ms;
    if (!LiveDataReady(window) && !timed_out) return;
    if (!audit_started) {
      audit_started = true;
      audit->FetchAll();
      return;
    }
    if (audit->fetches_in_flight() > 0 && !timed_out) return;
    poll.stop();
    if (timed_out) {
      std::cerr << "sextant gui: live data incomplete after " << o.screenshot_wait_ms
                << " ms; capturing what there is\n";
    }
    PrepareForScreenshots(window);
    auto files = window.SaveScreenshots(QString::fromStdString(o.screenshots_dir));
    if (!files.ok()) {
      std::cerr << "sextant gui: " << files.status().message() << "\n";
    } else {
      for (const QString& f : *files) std::cout << f.toStdString() << "\n";
      rc = 0;
    }
    app.quit();
  });
  poll.start();
  QApplication::exec();
  return rc;
}

int RunBenchmark(QApplication& app, ui::MainWindow& window, const GuiLaunchOptions& o) {
  ui::EventLoopProbe probe(std::chrono::milliseconds(20));
  // The busiest views: the fleet tree and the deployments chart follow every refresh.
  window.ShowView("deployments");
  probe.Start();
  int fleet_switch = 0;
  QTimer flip;  // alternate views like a user would, so both render under load
  QObject::connect(&flip, &QTimer::timeout, &window,
                   [&] { window.ShowView(++fleet_switch % 2 == 0 ? "deployments" : "fleet"); });
  flip.start(5000);
  QTimer::singleShot(o.bench_seconds * 1000, &app, &QApplication::quit);
  QApplication::exec();
  probe.Stop();
  int targets = 0, connected = 0;
  if (const auto& snap = window.loader()->latest()) {
    for (const auto& a : snap->fleet.accounts) {
      for (const auto& t : a.targets) {
        ++targets;
        connected += t.status.state == console::ConnState::kConnected ? 1 : 0;
      }
    }
  }
  nlohmann::json out = {
      {"seconds", o.bench_seconds},
      {"targets", targets},
      {"connected", connected},
      {"snapshots_loaded", window.loader()->loads()},
      {"event_loop_samples", probe.samples().size()},
      {"event_loop_latency_ms",
       {{"p50", probe.Quantile(0.50)},
        {"p99", probe.Quantile(0.99)},
        {"max", probe.Quantile(1.0)}}},
      {"rss_mib", static_cast<double>(ProcStatusKb("VmRSS")) / 1024.0},
      {"peak_rss_mib", static_cast<double>(ProcStatusKb("VmHWM")) / 1024.0},
  };
  std::cout << out.dump(2) << "\n";
  return 0;
}

struct GuiArgs {
  std::string state;
  std::string screenshots;
  std::string spec;
  std::string model_dir;
  int bench_seconds = 0;
};

void SetupGui(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<GuiArgs>();
  auto* cmd = root.add_subcommand("gui", "Open the desktop console (the default with no verb)");
  cmd->add_option("--state", args->state, "Console state directory (holds console.db)");
  cmd->add_option("--screenshots", args->screenshots,
                  "Render every view with live data to DIR/<view>.png, then exit");
  cmd->add_option("--spec", args->spec, "Deployment spec preselected in Validate & push");
  cmd->add_option("--model-dir", args->model_dir, "Where the spec's model resolves");
  cmd->add_option("--bench-seconds", args->bench_seconds,
                  "Run N seconds, then print the GUI thread's event-loop latency and memory")
      ->check(CLI::Range(1, 86400))
      ->group("");  // hidden: a benchmark
  cmd->callback([args, &ctx] {
    static char arg0[] = "sextant";
    static char* argv[] = {arg0, nullptr};
    GuiLaunchOptions o;
    o.state = args->state;
    o.screenshots_dir = args->screenshots;
    o.spec = args->spec;
    o.model_dir = args->model_dir;
    o.bench_seconds = args->bench_seconds;
    o.argc = 1;
    o.argv = argv;
    ctx.exit_code = LaunchGui(o);
  });
}

}  // namespace

int LaunchGui(const GuiLaunchOptions& options) {
  if (!DisplayAvailable()) {
    ExplainNoDisplay();
    return 2;
  }
  auto console = OpenConsoleDatabase(options.state);
  if (!console.ok()) return ReportError("gui", console.status());
  std::shared_ptr<console::ConsoleDatabase> store = std::move(console).value();

  ui::SnapshotSources sources;
  std::vector<std::string> notes;
  if (auto dir = FindResourceDir("prices"); dir.ok()) {
    auto catalog = console::PriceCatalog::LoadDir(*dir);
    if (catalog.ok()) {
      sources.catalog = std::make_shared<const console::PriceCatalog>(std::move(catalog).value());
    } else {
      notes.push_back(catalog.status().message());
    }
  } else {
    notes.push_back(dir.status().message());
  }
  if (auto dir = FindResourceDir("policies"); dir.ok()) {
    auto packs = console::LoadPacks(*dir);
    if (packs.ok()) {
      sources.packs = std::move(packs).value();
    } else {
      notes.push_back(packs.status().message());
    }
  } else {
    notes.push_back(dir.status().message());
  }
  for (const auto& n : notes) std::cerr << "sextant gui: " << n << "\n";

  rpc::ConnectorOptions copts;
  copts.metrics_interval_ms = options.metrics_interval_ms;
  copts.call_deadline = std::chrono::milliseconds(5000);
  sources.stale_after_ms = copts.stale_after.count();
  rpc::FleetConnector connector(store.get(), copts);
  auto targets = store->targets().List();
  if (!targets.ok()) return ReportError("gui", targets.status());
  connector.Start(*targets);

  std::string spec = options.spec;
  if (spec.empty()) {
    if (auto ex = FindResourceDir("examples"); ex.ok()) {
      auto p = *ex / "stories260k.yaml";
      if (std::filesystem::exists(p)) spec = p.string();
    }
  }

  int argc = options.argc;
  static char arg0[] = "sextant";
  static char* default_argv[] = {arg0, nullptr};
  char** argv = options.argv != nullptr ? options.argv : default_argv;
  if (argc <= 0) argc = 1;
  int rc = 0;
  {
    QApplication app(argc, argv);
    QApplication::setApplicationName("Sextant");
    QApplication::setOrganizationName("Sextant");
    ui::MainWindowOptions wo;
    wo.actions = std::make_shared<ConnectorConsoleActions>(store.get(), &connector);
    wo.load = [store, sources]() {
      return ui::LoadConsoleSnapshot(*store, sources, console::NowMs());
    };
    wo.refresh_ms = 1000;
    wo.default_spec = QString::fromStdString(spec);
    wo.default_model_dir = QString::fromStdString(options.model_dir);
    // Screenshots and benchmarks do not read or write the user's window layout.
    wo.remember_layout = options.screenshots_dir.empty() && options.bench_seconds == 0;
    ui::MainWindow window(std::move(wo));
    window.show();
    if (!options.screenshots_dir.empty()) {
      rc = RunScreenshots(app, window, options);
    } else if (options.bench_seconds > 0) {
      rc = RunBenchmark(app, window, options);
    } else {
      rc = QApplication::exec();
    }
  }
  connector.Stop();
  return rc;
}

int LaunchGuiOrExplain(int argc, char** argv) {
  if (!DisplayAvailable()) {
    ExplainNoDisplay();
    return 2;
  }
  GuiLaunchOptions o;
  o.argc = argc;
  o.argv = argv;
  return LaunchGui(o);
}

}  // namespace sextant::cli

SEXTANT_REGISTER_VERB(gui, sextant::cli::SetupGui);
