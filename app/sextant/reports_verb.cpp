// `sextant reports list|show|verify|key`: the signed validation reports in the console store and
// the public half of the console's signing key (what customers configure on their agents).
#include <CLI/CLI.hpp>

#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/cli/verb.h"
#include "app/common/signing.h"
#include "app/console/store/console_database.h"

namespace sextant::cli {
namespace {

struct ReportsArgs {
  std::string state;
  std::string key;
  std::string public_key;
  std::string output = "table";
  std::string spec_digest;
  int limit = 50;
  std::vector<int64_t> ids;
};

int Fail(const Status& s) {
  std::cerr << "sextant reports: " << s.message() << "\n";
  return 1;
}

Result<std::unique_ptr<console::ConsoleDatabase>> OpenStore(const ReportsArgs& a) {
  SEXTANT_ASSIGN_OR_RETURN(auto dir, console::ConsoleDatabase::ResolveStateDir(a.state));
  SEXTANT_ASSIGN_OR_RETURN(auto console, console::ConsoleDatabase::Open(dir));
  return console;
}

// The key reports are checked against: --public-key PEM, else the console's own signing key.
Result<report::VerifyingKey> TrustedKey(const ReportsArgs& a) {
  if (!a.public_key.empty()) return report::VerifyingKey::LoadPem(a.public_key);
  Result<std::filesystem::path> path =
      a.key.empty() ? report::DefaultSigningKeyPath() : Result<std::filesystem::path>(a.key);
  if (!path.ok()) return path.status();
  auto key = report::SigningKey::Load(*path);
  if (!key.ok()) {
    return key.status().WithContext("no signing key to verify with (pass --public-key PEM)");
  }
  return key->public_key();
}

std::string Short(const std::string& s) { return s.substr(0, 12); }

int List(const ReportsArgs& a) {
  auto console = OpenStore(a);
  if (!console.ok()) return Fail(console.status());
  console::ReportRepository& reports = (*console)->reports();
  auto rows = reports.List(a.spec_digest, a.limit);
  if (!rows.ok()) return Fail(rows.status());
  if (a.output == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : *rows) {
      out.push_back({{"id", r.id},
                     {"createdAt", r.created_at},
                     {"specName", r.spec_name},
                     {"specDigest", r.spec_digest},
                     {"modelSha256", r.model_sha256},
                     {"passed", r.passed},
                     {"keyId", r.signed_report.key_id}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (rows->empty()) {
    std::cout << "no validation reports in " << (*console)->path().string() << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(6) << "ID" << std::setw(22) << "CREATED" << std::setw(24)
            << "DEPLOYMENT" << std::setw(14) << "SPEC DIGEST" << std::setw(14) << "MODEL"
            << std::setw(8) << "RESULT"
            << "KEY\n";
  for (const auto& r : *rows) {
    std::cout << std::left << std::setw(6) << r.id << std::setw(22) << r.created_at << std::setw(24)
              << r.spec_name << std::setw(14) << Short(r.spec_digest) << std::setw(14)
              << Short(r.model_sha256) << std::setw(8) << (r.passed ? "passed" : "FAILED")
              << Short(r.signed_report.key_id) << "\n";
  }
  return 0;
}

int Show(const ReportsArgs& a) {
  auto console = OpenStore(a);
  if (!console.ok()) return Fail(console.status());
  console::ReportRepository& reports = (*console)->reports();
  if (a.ids.size() != 1) return Fail(Status::InvalidArgument("show takes one report id"));
  auto row = reports.Get(a.ids[0]);
  if (!row.ok()) return Fail(row.status());
  if (a.output == "json") {
    nlohmann::json out = report::SignedReportToJson(row->signed_report);
    out["id"] = row->id;
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  auto parsed =
      report::FromJson(nlohmann::json::parse(row->signed_report.report_json, nullptr, false));
  if (!parsed.ok()) return Fail(parsed.status().WithContext("report " + std::to_string(row->id)));
  const report::ValidationReport& r = *parsed;
  std::cout << "report        " << row->id << " (" << (r.passed ? "passed" : "FAILED") << ")\n"
            << "created       " << r.created_at << "\n"
            << "deployment    " << r.spec_name << "\n"
            << "spec digest   " << r.spec_digest << "\n"
            << "model         " << r.model_uri << "  sha256 " << r.model_sha256 << "\n"
            << "engine        " << r.engine_build_id << "  backend " << r.backend << " on "
            << r.device << ", " << r.threads << " threads\n"
            << "output digest " << r.output_digest << "\n"
            << "peak memory   " << r.peak_memory_bytes << " bytes\n"
            << "worst TTFT    " << r.worst_ttft_ms << " ms (threshold " << r.max_ttft_ms_threshold
            << ", 0 = unchecked)\n"
            << "tokens/s      " << r.tokens_per_second << " (threshold "
            << r.min_tokens_per_second_threshold << ", 0 = unchecked)\n";
  for (const auto& f : r.failures) std::cout << "failure       " << f << "\n";
  if (r.carried_from) {
    // A carried report's figures were measured on another spec (sextant scale): which one.
    std::cout << "carried from  report " << r.carried_from->report_id << " (spec digest "
              << r.carried_from->spec_digest << ", report sha256 " << r.carried_from->report_sha256
              << "): " << r.carried_from->reason << "\n";
  }
  std::cout << "\n"
            << std::left << std::setw(4) << "#" << std::setw(8) << "prompt" << std::setw(8)
            << "tokens" << std::setw(10) << "ttft ms" << std::setw(10) << "itl ms" << std::setw(10)
            << "tok/s"
            << "output digest\n";
  for (const auto& p : r.prompts) {
    std::cout << std::left << std::setw(4) << p.index << std::setw(8) << p.prompt_tokens
              << std::setw(8) << p.generated_tokens << std::setw(10) << p.ttft_ms << std::setw(10)
              << p.inter_token_ms << std::setw(10) << p.tokens_per_second << p.output_digest
              << "\n";
  }
  std::cout << "\nsignature     " << row->signed_report.signature << "\nkey id        "
            << row->signed_report.key_id << "\n";
  return 0;
}

int Verify(const ReportsArgs& a) {
  auto console = OpenStore(a);
  if (!console.ok()) return Fail(console.status());
  auto key = TrustedKey(a);
  if (!key.ok()) return Fail(key.status());
  console::ReportRepository& reports = (*console)->reports();
  std::vector<console::StoredReport> rows;
  if (a.ids.empty()) {
    auto all = reports.List();
    if (!all.ok()) return Fail(all.status());
    rows = std::move(*all);
  } else {
    for (int64_t id : a.ids) {
      auto row = reports.Get(id);
      if (!row.ok()) return Fail(row.status());
      rows.push_back(std::move(*row));
    }
  }
  int bad = 0;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : rows) {
    auto verified = console::VerifyStoredReport(row, *key);
    if (!verified.ok()) ++bad;
    if (a.output == "json") {
      nlohmann::json item{{"id", row.id}, {"ok", verified.ok()}, {"keyId", key->key_id()}};
      if (!verified.ok()) item["error"] = verified.status().ToString();
      out.push_back(item);
    } else if (verified.ok()) {
      std::cout << "report " << row.id << ": signature ok (key " << Short(key->key_id()) << "), "
                << row.spec_name << " " << Short(row.spec_digest) << " "
                << (row.passed ? "passed" : "failed") << "\n";
    } else {
      std::cout << "report " << row.id << ": NOT VERIFIED: " << verified.status().message() << "\n";
    }
  }
  if (a.output == "json") {
    std::cout << out.dump(2) << "\n";
  } else if (rows.empty()) {
    std::cout << "no validation reports to verify\n";
  }
  return bad == 0 ? 0 : 1;
}

int Key(const ReportsArgs& a) {
  Result<std::filesystem::path> path =
      a.key.empty() ? report::DefaultSigningKeyPath() : Result<std::filesystem::path>(a.key);
  if (!path.ok()) return Fail(path.status());
  auto key = report::SigningKey::LoadOrCreate(*path);
  if (!key.ok()) return Fail(key.status());
  if (a.output == "json") {
    std::cout << nlohmann::json{{"keyId", key->key_id()},
                                {"publicKeyPem", key->public_key().Pem()},
                                {"path", path->string()}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "# report signing key " << key->key_id() << " (" << path->string() << ")\n"
              << key->public_key().Pem();
  }
  return 0;
}

void SetupReports(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<ReportsArgs>();
  auto* cmd = root.add_subcommand("reports", "Signed validation reports in the console store");
  cmd->require_subcommand(1);
  auto common = [&](CLI::App* sub) {
    sub->add_option("--state", args->state, "Console state directory (holds console.db)");
    sub->add_option("-o,--output", args->output, "table or json")
        ->check(CLI::IsMember({"table", "json"}));
  };

  auto* list = cmd->add_subcommand("list", "List reports, newest first");
  common(list);
  list->add_option("--spec-digest", args->spec_digest, "Only reports of this spec digest");
  list->add_option("--limit", args->limit, "At most this many (0: all)")
      ->check(CLI::NonNegativeNumber);
  list->callback([args, &ctx] { ctx.exit_code = List(*args); });

  auto* show = cmd->add_subcommand("show", "Show one report with its signature");
  common(show);
  show->add_option("ID", args->ids, "Report id")->required()->expected(1);
  show->callback([args, &ctx] { ctx.exit_code = Show(*args); });

  auto* verify = cmd->add_subcommand(
      "verify", "Check reports' signatures and that the stored rows match the signed bytes");
  common(verify);
  verify->add_option("ID", args->ids, "Report ids (default: all)");
  verify->add_option("--key", args->key, "Verify against this signing key (PEM)");
  verify->add_option("--public-key", args->public_key, "Verify against this public key (PEM)");
  verify->callback([args, &ctx] { ctx.exit_code = Verify(*args); });

  auto* key =
      cmd->add_subcommand("key", "Print the public key that signs reports (created on first use)");
  key->add_option("--key", args->key, "Signing key file (default: the console config dir)");
  key->add_option("-o,--output", args->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  key->callback([args, &ctx] { ctx.exit_code = Key(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(reports, SetupReports);

}  // namespace sextant::cli
