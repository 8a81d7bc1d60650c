// `sextant validate SPEC`: runs a deployment spec's validation prompts greedily on the embedded
// engine, signs the validation report with the console's key and stores it in the console store.
// Exit status: 0 passed, 1 failed thresholds or could not validate, 2 usage.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "app/cli/verb.h"
#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "app/common/validation_runner.h"
#include "app/console/store/console_database.h"

namespace sextant::cli {
namespace {

struct ValidateArgs {
  std::string spec_file;
  std::string backend;
  std::string model_dir;
  int threads = -1;
  std::string state;
  std::string key;
  std::string output = "table";
};

// A one-line progress bar on stderr, redrawn in place; only on a terminal.
class ProgressBar {
 public:
  ProgressBar() : enabled_(::isatty(STDERR_FILENO) == 1) {}
  ~ProgressBar() { Clear(); }

  void Update(std::string_view stage, double fraction) {
    if (!enabled_) return;
    std::lock_guard<std::mutex> lock(mu_);
    const int pct = static_cast<int>(fraction * 100.0 + 0.5);
    if (stage == stage_ && pct == pct_) return;
    stage_ = std::string(stage);
    pct_ = pct;
    constexpr int kWidth = 30;
    const int filled = std::clamp(pct * kWidth / 100, 0, kWidth);
    std::fprintf(stderr, "\r\033[K[%s%s] %3d%% %s", std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), pct, stage_.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void Clear() {
    if (!enabled_ || !drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }

 private:
  bool enabled_;
  std::mutex mu_;
  std::string stage_;
  int pct_ = -1;
  bool drawn_ = false;
};

std::string Fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

std::string OneLine(const std::string& text, size_t max) {
  std::string out;
  for (char c : text) out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
  if (out.size() > max) {
    out.resize(max - 3);
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
    if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
    out += "...";
  }
  return out;
}

void PrintTable(const validate::ValidationRun& run, int64_t report_id,
                const report::SignedReport& signed_report, const std::string& db_path) {
  const report::ValidationReport& r = run.report;
  std::cout << "deployment    " << r.spec_name << "  (spec digest " << r.spec_digest << ")\n";
  std::cout << "model         " << run.model_path.string() << "  sha256 " << r.model_sha256
            << " (matches the spec)\n";
  std::cout << "engine        " << r.engine_build_id << "  backend " << r.backend << " on "
            << r.device << ", " << r.threads << " threads\n";
  if (!run.backend_note.empty()) std::cout << "              " << run.backend_note << "\n";
  if (!run.chat_template.empty()) std::cout << "chat template " << run.chat_template << "\n";
  std::cout << "\n"
            << std::left << std::setw(4) << "#" << std::right << std::setw(8) << "tokens"
            << std::setw(10) << "ttft ms" << std::setw(9) << "itl ms" << std::setw(10) << "tok/s"
            << "  " << std::left << std::setw(18) << "output digest"
            << "output\n";
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    const auto& p = r.prompts[i];
    std::cout << std::left << std::setw(4) << p.index << std::right << std::setw(8)
              << p.generated_tokens << std::setw(10) << Fixed(p.ttft_ms, 2) << std::setw(9)
              << Fixed(p.inter_token_ms, 2) << std::setw(10) << Fixed(p.tokens_per_second, 1)
              << "  " << std::left << std::setw(18) << (p.output_digest.substr(0, 16))
              << OneLine(run.output_texts[i], 60) << "\n";
  }
  std::cout << "\noutput digest " << r.output_digest << "\n";
  std::cout << "peak memory   " << Fixed(static_cast<double>(r.peak_memory_bytes) / 1048576.0, 1)
            << " MiB\n";
  std::cout << "thresholds    time to first token "
            << (r.max_ttft_ms_threshold > 0 ? "<= " + Fixed(r.max_ttft_ms_threshold, 1) + " ms"
                                            : std::string("unchecked"))
            << " (worst " << Fixed(r.worst_ttft_ms, 2) << " ms); tokens/s "
            << (r.min_tokens_per_second_threshold > 0
                    ? ">= " + Fixed(r.min_tokens_per_second_threshold, 1)
                    : std::string("unchecked"))
            << " (measured " << Fixed(r.tokens_per_second, 1) << ")\n";
  for (const auto& f : r.failures) std::cout << "failure       " << f << "\n";
  std::cout << (r.passed ? "PASSED" : "FAILED") << "        report " << report_id
            << " signed with key " << signed_report.key_id.substr(0, 16) << ", stored in "
            << db_path << "\n";
}

int Validate(const ValidateArgs& a) {
  auto spec = spec::LoadDeploymentSpec(a.spec_file);
  if (!spec.ok()) {
    std::cerr << spec.status().message() << "\n";
    return 1;
  }
  auto fail = [](const Status& s) {
    std::cerr << "sextant validate: " << s.message() << "\n";
    return 1;
  };

  // Key and store first: a run that cannot be recorded is not started.
  Result<std::filesystem::path> key_path =
      a.key.empty() ? report::DefaultSigningKeyPath() : Result<std::filesystem::path>(a.key);
  if (!key_path.ok()) return fail(key_path.status());
  auto key = report::SigningKey::LoadOrCreate(*key_path);
  if (!key.ok()) return fail(key.status());
  auto state_dir = console::ConsoleDatabase::ResolveStateDir(a.state);
  if (!state_dir.ok()) return fail(state_dir.status());
  auto console = console::ConsoleDatabase::Open(*state_dir);
  if (!console.ok()) return fail(console.status());

  validate::ValidateOptions options;
  options.backend = a.backend;
  options.threads = a.threads;
  options.model_dir = a.model_dir;
  ProgressBar bar;
  options.on_progress = [&bar](std::string_view stage, double f) { bar.Update(stage, f); };
  auto run = validate::RunValidation(*spec, options);
  bar.Clear();
  if (!run.ok()) return fail(run.status());

  auto signed_report = report::SignReport(run->report, *key);
  if (!signed_report.ok()) return fail(signed_report.status());
  console::ReportRepository& reports = (*console)->reports();
  auto id = reports.Add(run->report, *signed_report);
  if (!id.ok()) return fail(id.status());

  if (a.output == "json") {
    nlohmann::json out = report::SignedReportToJson(*signed_report);
    out["id"] = *id;
    out["outputTexts"] = run->output_texts;
    std::cout << out.dump(2) << "\n";
  } else {
    PrintTable(*run, *id, *signed_report, (*console)->path().string());
  }
  return run->report.passed ? 0 : 1;
}

void SetupValidate(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<ValidateArgs>();
  auto* cmd = root.add_subcommand(
      "validate",
      "Run a deployment spec's validation prompts on the embedded engine and store a signed "
      "report");
  cmd->add_option("SPEC", args->spec_file, "Deployment spec (YAML)")->required();
  cmd->add_option("--backend", args->backend, "auto, cpu, cuda or hip (default: the spec's)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda", "hip"}));
  cmd->add_option("--model-dir", args->model_dir,
                  "Directory where the spec's model URI resolves (default: current directory)");
  cmd->add_option("--threads", args->threads, "CPU threads (default: the spec's)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--state", args->state, "Console state directory (holds console.db)");
  cmd->add_option("--key", args->key,
                  "Signing key (PEM; created when missing; default: the console config dir)");
  cmd->add_option("-o,--output", args->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->callback([args, &ctx] { ctx.exit_code = Validate(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(validate, SetupValidate);

}  // namespace sextant::cli
