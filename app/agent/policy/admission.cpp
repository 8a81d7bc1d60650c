#include "app/agent/policy/admission.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <sstream>

#include "app/common/approval.h"

namespace sextant::agent {

namespace {

constexpr size_t kMaxApprovalsFileBytes = 4 * 1024 * 1024;

Result<std::string> NormalizeHex(std::string s, const std::string& what) {
  if (s.rfind("sha256:", 0) == 0) s = s.substr(7);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s.size() != 64 ||
      !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); })) {
    return Status::InvalidArgument(what + " '" + s + "' is not 64 hex digits");
  }
  return s;
}

}  // namespace

Result<std::unique_ptr<Admission>> Admission::Create(const AdmissionConfig& config) {
  std::unique_ptr<Admission> a(new Admission());
  for (size_t i = 0; i < config.approval_keys_pem.size(); ++i) {
    auto key = report::VerifyingKey::FromPem(config.approval_keys_pem[i]);
    if (!key.ok()) {
      return key.status().WithContext("admission.approval_keys entry " + std::to_string(i + 1));
    }
    a->keys_.push_back(*key);
  }
  a->approvals_file_ = config.approvals_file;
  for (const auto& d : config.allowed_spec_digests) {
    SEXTANT_ASSIGN_OR_RETURN(std::string hex, NormalizeHex(d, "admission.allow_specs entry"));
    a->specs_.insert("sha256:" + hex);
  }
  for (const auto& m : config.allowed_model_sha256) {
    SEXTANT_ASSIGN_OR_RETURN(std::string hex, NormalizeHex(m, "admission.allow_models entry"));
    a->models_.insert(hex);
  }
  return a;
}

bool Admission::configured() const { return !keys_.empty() || !specs_.empty() || !models_.empty(); }

std::string Admission::Describe() const {
  if (!configured()) return "nothing configured: every apply is refused";
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : "; ") + s; };
  if (!keys_.empty()) {
    std::string ids;
    for (const auto& k : keys_) ids += (ids.empty() ? "" : ",") + k.key_id().substr(0, 16);
    add(std::to_string(keys_.size()) + " approval key(s) (" + ids + "), approvals in " +
        (approvals_file_.empty() ? std::string("(no file configured)") : approvals_file_.string()));
  }
  if (!specs_.empty()) add(std::to_string(specs_.size()) + " spec digest(s) allowed");
  if (!models_.empty()) add(std::to_string(models_.size()) + " model sha256(s) allowed");
  return out;
}

Result<AdmissionResult> Admission::Admit(const std::string& spec_digest,
                                         const std::string& model_sha256,
                                         std::string* detail) const {
  auto spec = NormalizeHex(spec_digest, "spec digest");
  if (!spec.ok()) return spec.status();
  const std::string want = "sha256:" + *spec;
  if (specs_.count(want)) return AdmissionResult{"spec digest on admission.allow_specs"};
  auto model = NormalizeHex(model_sha256, "model sha256");
  if (model.ok() && models_.count(*model)) {
    return AdmissionResult{"model sha256:" + model->substr(0, 16) +
                           "... on admission.allow_models"};
  }
  if (!configured()) {
    return Status::PermissionDenied("spec " + want +
                                    " is not admitted by this agent's owner: this agent admits no "
                                    "deployment until its owner says which; " +
                                    kAdmissionHowTo);
  }
  std::string notes;
  auto note = [&](const std::string& s) { notes += (notes.empty() ? "" : "; ") + s; };
  if (!keys_.empty() && !approvals_file_.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    std::error_code ec;
    if (std::filesystem::exists(approvals_file_, ec)) {
      std::ifstream in(approvals_file_, std::ios::binary);
      if (!in) {
        return Status::Unavailable("the approvals file " + approvals_file_.filename().string() +
                                   " cannot be read; no apply is admitted by approval until it "
                                   "can");
      }
      const auto size = std::filesystem::file_size(approvals_file_, ec);
      if (!ec && size > kMaxApprovalsFileBytes) {
        return Status::Unavailable(
            "the approvals file is larger than 4 MiB; no apply is "
            "admitted by approval until it is trimmed");
      }
      const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      std::string line;
      int line_no = 0;
      while (std::getline(in, line)) {
        ++line_no;
        if (line.empty() || line[0] == '#') continue;
        const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        auto s = approval::SignedApprovalFromJson(j);
        if (j.is_discarded() || !s.ok()) {
          note("line " + std::to_string(line_no) + " is not a signed approval");
          continue;
        }
        const report::VerifyingKey* key = nullptr;
        for (const auto& k : keys_) {
          if (k.key_id() == s->key_id) key = &k;
        }
        if (!key) {
          // Approvals by keys no longer (or never) configured are not errors.
          continue;
        }
        auto a = approval::VerifyApproval(*s, *key);
        if (!a.ok()) {
          note("line " + std::to_string(line_no) + ": " + a.status().message());
          continue;
        }
        if (a->spec_digest != want) continue;
        if (approval::Expired(*a, now)) {
          note("line " + std::to_string(line_no) + ": the approval of " + want + " expired at " +
               a->expires_at);
          continue;
        }
        return AdmissionResult{
            "approved by " +
            (a->approved_by.empty() ? std::string("key ") + key->key_id().substr(0, 16)
                                    : a->approved_by) +
            (a->approved_at.empty() ? "" : " at " + a->approved_at) + " (key " +
            key->key_id().substr(0, 16) + ", " + approvals_file_.filename().string() + " line " +
            std::to_string(line_no) + ")"};
      }
    } else {
      note("no approvals file at " + approvals_file_.string());
    }
  }
  if (detail) *detail = notes;
  std::string configured_rules;
  if (!keys_.empty()) {
    configured_rules = "no valid approval of it by one of the " + std::to_string(keys_.size()) +
                       " approval key(s)";
  }
  if (!specs_.empty() || !models_.empty()) {
    configured_rules += std::string(configured_rules.empty() ? "" : ", and ") +
                        "neither it nor its model is on the allow-lists";
  }
  return Status::PermissionDenied(
      "spec " + want + " is not admitted by this agent's owner: " + configured_rules +
      " (the owner approves it with `sextant-agent approve " + want + " --key KEY`)");
}

}  // namespace sextant::agent
