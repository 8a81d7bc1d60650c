// Benchmark of the console side of the fleet: the FleetConnector against N targets of
// `sextant-loadgen` (started here as a child process, so this process holds only the console),
// each streaming metrics at --interval-ms. Prints samples stored per second, the latency of the
// store writes, the time to connect every target, the CPU and memory of this process, and the
// latency of fleet reads meanwhile: in this process (what the desktop console does), and, with
// --sextant PATH, of `sextant fleet --offline -o json` run against the same store once a second
// (another process reading while this one writes).
//
//   fleet_connector_bench --agents 1000 --seconds 60 [--interval-ms 1000] [--gpus 8]
//                         [--targets-per-server K] [--max-connects N] [--flush-ms MS]
//                         [--sextant PATH] [--loadgen PATH] [--state DIR]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "app/console/fleet/fleet.h"
#include "app/console/store/console_database.h"
#include "connectors/console/fleet_connector.h"
#include "engine/base/percentile.h"

namespace {

using sextant::Percentile;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double CpuSeconds(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// kB of a /proc/<pid>/status field ("VmRSS", "VmHWM").
long StatusKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + (pid ? std::to_string(pid) : std::string("self")) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

double CpuSecondsOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> f;
  std::string cur;
  for (char c : all.substr(close + 2)) {
    if (c == ' ') {
      f.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (f.size() < 13) return 0;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(f[11]) + std::stod(f[12])) / hz;  // utime, stime (fields 14, 15)
}

// Runs `argv` with stdout and stderr to /dev/null; its exit status, or -1.
int RunQuiet(const std::vector<std::string>& args) {
  // Built before fork: the child of a threaded process may only make async-signal-safe calls.
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Child {
  pid_t pid = -1;
  int out = -1;
};

// Starts the load generator and waits (bounded) for its "ready N" line.
bool StartLoadgen(const std::string& exe, const std::vector<std::string>& args, Child* child,
                  std::chrono::seconds wait) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return false;
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    close(pipefd[1]);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    std::perror("exec sextant-loadgen");
    _exit(127);
  }
  close(pipefd[1]);
  child->pid = pid;
  child->out = pipefd[0];
  std::string line;
  const auto deadline = Clock::now() + wait;
  while (Clock::now() < deadline) {
    pollfd p{child->out, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char c;
    const ssize_t n = read(child->out, &c, 1);
    if (n <= 0) return false;  // exited
    if (c == '\n') {
      if (line.rfind("ready ", 0) == 0) return true;
      line.clear();
    } else {
      line += c;
    }
  }
  return false;
}

void StopChild(Child* c) {
  if (c->pid <= 0) return;
  kill(c->pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 300; ++i) {  // 30 s
    if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
      c->pid = -1;
      return;
    }
    std::this_thread::sleep_for(100ms);
  }
  kill(c->pid, SIGKILL);
  waitpid(c->pid, &status, 0);
  c->pid = -1;
}

}  // namespace

int main(int argc, char** argv) {
  int agents = 20, seconds = 30, gpus = 0, per_server = 1, max_connects = 16, flush_ms = 250;
  int32_t interval_ms = 1000;
  std::string loadgen, state, sextant;
  CLI::App app{"FleetConnector ingest benchmark against sextant-loadgen"};
  app.add_option("--agents", agents)->check(CLI::Range(1, 5000));
  app.add_option("--seconds", seconds, "measured window")->check(CLI::Range(1, 3600));
  app.add_option("--interval-ms", interval_ms, "metrics interval")->check(CLI::Range(10, 60000));
  app.add_option("--gpus", gpus, "GPUs per agent (0: profile count)");
  app.add_option("--loadgen", loadgen, "path of sextant-loadgen (default: next to this)");
  app.add_option("--state", state, "console state dir (default: a temp dir, removed)");
  app.add_option("--targets-per-server", per_server,
                 "targets sharing one agent server in the load generator")
      ->check(CLI::Range(1, 1000));
  app.add_option("--max-connects", max_connects, "connections set up at once by the console")
      ->check(CLI::Range(1, 10000));
  app.add_option("--flush-ms", flush_ms, "the console's batch write interval")
      ->check(CLI::Range(1, 60000));
  app.add_option("--sextant", sextant,
                 "path of the sextant CLI: also time `sextant fleet --offline -o json`");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::error_code ec;
  if (loadgen.empty()) {
    loadgen = (fs::read_symlink("/proc/self/exe", ec).parent_path() / "sextant-loadgen").string();
  }
  const bool temp_state = state.empty();
  if (temp_state) {
    state = (fs::temp_directory_path() / ("fleet_bench_" + std::to_string(getpid()))).string();
  }

  Child child;
  const auto t_start = Clock::now();
  if (!StartLoadgen(loadgen,
                    {"--agents", std::to_string(agents), "--interval-ms",
                     std::to_string(interval_ms), "--state", state, "--gpus", std::to_string(gpus),
                     "--prefix", "bench-", "--targets-per-server", std::to_string(per_server)},
                    &child, std::chrono::seconds(60 + agents))) {
    std::cerr << "fleet_connector_bench: " << loadgen << " did not become ready\n";
    StopChild(&child);
    return 1;
  }
  const double startup_s = std::chrono::duration<double>(Clock::now() - t_start).count();

  auto st = sextant::console::ConsoleDatabase::Open(state);
  if (!st.ok()) {
    std::cerr << "fleet_connector_bench: " << st.status().message() << "\n";
    StopChild(&child);
    return 1;
  }
  auto& store = **st;
  auto all = store.targets().List();
  std::vector<sextant::console::Target> targets;
  for (const auto& t : *all) {
    if (t.name.rfind("bench-", 0) == 0) targets.push_back(t);
  }

  std::mutex mu;
  std::vector<double> write_ms;   // GUARDED_BY(mu)
  std::vector<double> queued_ms;  // GUARDED_BY(mu)
  std::atomic<int64_t> batch_sum{0};
  std::chrono::microseconds last_write{-1};  // GUARDED_BY(mu)
  std::atomic<int64_t> snapshots{0}, gpu_samples{0}, dep_samples{0}, failures{0};
  std::atomic<bool> measuring{false};
  sextant::rpc::ConnectorOptions o;
  o.metrics_interval_ms = interval_ms;
  o.call_deadline = 20000ms;
  o.stale_after = std::chrono::milliseconds(std::max(15000, 5 * interval_ms));
  o.max_concurrent_connects = max_connects;
  o.flush_interval = std::chrono::milliseconds(flush_ms);
  o.on_ingest = [&](const sextant::rpc::IngestEvent& e) {
    if (!measuring.load()) return;
    ++snapshots;
    gpu_samples += e.gpu_samples;
    dep_samples += e.deployment_samples;
    batch_sum += e.batch_snapshots;
    if (!e.ok) ++failures;
    std::lock_guard lock(mu);
    // One entry per transaction (its first snapshot), and every snapshot's wait.
    queued_ms.push_back(static_cast<double>(e.queued.count()) / 1000.0);
    if (static_cast<int>(queued_ms.size()) == 1 || e.store_write != last_write) {
      write_ms.push_back(static_cast<double>(e.store_write.count()) / 1000.0);
      last_write = e.store_write;
    }
  };
  sextant::rpc::FleetConnector connector(&store, o);
  const auto t_connect = Clock::now();
  connector.Start(targets);
  // Warm-up: every target connected (bounded), then one more interval.
  int connected = 0;
  while (Clock::now() - t_connect < std::chrono::seconds(60 + agents)) {
    connected = 0;
    for (const auto& s : connector.Statuses()) {
      connected += s.state == sextant::console::ConnState::kConnected && s.last_seen > 0;
    }
    if (connected == static_cast<int>(targets.size())) break;
    std::this_thread::sleep_for(100ms);
  }
  const double connect_s = std::chrono::duration<double>(Clock::now() - t_connect).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));

  const auto rows_before = store.telemetry().CountRows("gpu_samples");
  const double cpu0 = CpuSeconds(RUSAGE_SELF);
  const double agents_cpu0 = CpuSecondsOf(child.pid);
  measuring = true;
  const auto t0 = Clock::now();
  // A fleet read every second meanwhile (what `sextant fleet` and the views do), on this
  // thread, whose CPU is accounted separately.
  std::vector<double> read_ms, cli_ms;
  int cli_failures = 0;
  double read_cpu = 0;
  double cli_cpu0 = CpuSeconds(RUSAGE_CHILDREN);
  while (Clock::now() - t0 < std::chrono::seconds(seconds)) {
    const auto r0 = Clock::now();
    const double c0 = ThreadCpuSeconds();
    auto snap = sextant::console::LoadFleet(store, sextant::console::NowMs(), 30000);
    if (snap.ok()) (void)sextant::console::Totals(*snap);
    read_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - r0).count());
    read_cpu += ThreadCpuSeconds() - c0;
    if (!sextant.empty()) {
      // The CLI exits 1 when a target is unreachable; only 0 and 1 are answers.
      const auto c1 = Clock::now();
      const int rc = RunQuiet(
          {sextant, "fleet", "--offline", "-o", "json", "--state", state, "--by", "target"});
      cli_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - c1).count());
      if (rc != 0 && rc != 1) ++cli_failures;
    }
    std::this_thread::sleep_until(r0 + 1s);
  }
  const double cli_cpu = CpuSeconds(RUSAGE_CHILDREN) - cli_cpu0;
  measuring = false;
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = CpuSeconds(RUSAGE_SELF) - cpu0;
  const double agents_cpu = CpuSecondsOf(child.pid) - agents_cpu0;
  const auto rows_after = store.telemetry().CountRows("gpu_samples");
  const long rss_kb = StatusKb(0, "VmRSS"), hwm_kb = StatusKb(0, "VmHWM");
  const long agents_rss_kb = StatusKb(child.pid, "VmRSS");
  int end_connected = 0;
  for (const auto& s : connector.Statuses()) {
    end_connected += s.state == sextant::console::ConnState::kConnected;
  }
  connector.Stop();
  StopChild(&child);

  std::vector<double> writes, waits;
  {
    std::lock_guard lock(mu);
    writes = write_ms;
    waits = queued_ms;
  }
  const double expected = static_cast<double>(targets.size()) * 1000.0 / interval_ms;
  std::printf(
      "fleet connector benchmark: %zu targets (%d per agent server), interval %d ms, %.0f s "
      "measured, max %d connects at once, batch every %d ms\n",
      targets.size(), per_server, interval_ms, wall, max_connects, flush_ms);
  std::printf("  loadgen ready in %.1f s; all targets connected in %.1f s (%d/%zu)\n", startup_s,
              connect_s, connected, targets.size());
  std::printf("  snapshots stored/s      %9.1f (expected %.1f)\n",
              static_cast<double>(snapshots.load()) / wall, expected);
  std::printf("  GPU samples stored/s    %9.1f\n", static_cast<double>(gpu_samples.load()) / wall);
  std::printf("  deployment samples/s    %9.1f\n", static_cast<double>(dep_samples.load()) / wall);
  if (rows_before.ok() && rows_after.ok()) {
    std::printf("  gpu_samples rows added  %9lld (%.1f/s)\n",
                static_cast<long long>(*rows_after - *rows_before),
                static_cast<double>(*rows_after - *rows_before) / wall);
  }
  std::printf("  store transactions      %9.1f/s, %.1f snapshots each on average\n",
              static_cast<double>(writes.size()) / wall,
              snapshots.load() ? static_cast<double>(batch_sum.load()) / snapshots.load() : 0.0);
  std::printf("  store write ms          p50 %.2f  p99 %.2f  max %.2f  (%zu writes, %lld failed)\n",
              Percentile(writes, 0.5), Percentile(writes, 0.99), Percentile(writes, 1.0),
              writes.size(), static_cast<long long>(failures.load()));
  std::printf("  snapshot wait ms        p50 %.2f  p99 %.2f  (arrival to its write)\n",
              Percentile(waits, 0.5), Percentile(waits, 0.99));
  std::printf("  fleet read ms (1 Hz)    p50 %.2f  p99 %.2f  max %.2f  (%zu reads, in process)\n",
              Percentile(read_ms, 0.5), Percentile(read_ms, 0.99), Percentile(read_ms, 1.0),
              read_ms.size());
  if (!sextant.empty()) {
    std::printf(
        "  sextant fleet -o json   p50 %.1f  p99 %.1f  max %.1f ms  (%zu runs, %d failed; "
        "--offline, another process)\n",
        Percentile(cli_ms, 0.5), Percentile(cli_ms, 0.99), Percentile(cli_ms, 1.0), cli_ms.size(),
        cli_failures);
    std::printf("  sextant fleet CPU       %.0f ms per run\n",
                cli_ms.empty() ? 0.0 : 1000.0 * cli_cpu / static_cast<double>(cli_ms.size()));
  }
  std::printf("  console CPU             %.1f%% of one core (ingest %.1f%%, fleet reads %.1f%%)\n",
              100.0 * cpu / wall, 100.0 * (cpu - read_cpu) / wall, 100.0 * read_cpu / wall);
  std::printf("  console memory          RSS %.1f MiB, peak %.1f MiB\n", rss_kb / 1024.0,
              hwm_kb / 1024.0);
  std::printf("  loadgen (agents) CPU    %.1f%% of one core, RSS %.1f MiB\n",
              100.0 * agents_cpu / wall, agents_rss_kb / 1024.0);
  std::printf("  connected at the end    %d/%zu\n", end_connected, targets.size());
  st->reset();
  if (temp_state) fs::remove_all(state, ec);
  return end_connected == static_cast<int>(targets.size()) ? 0 : 1;
}
