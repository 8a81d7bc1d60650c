#include "app/common/approval.h"

#include <algorithm>
#include <cctype>
#include <ctime>

namespace sextant::approval {

namespace {

constexpr char kDomain[] = "sextant-customer-approval/v1\n";

Result<std::string> NormalizeSpecDigest(const std::string& digest) {
  std::string hex = digest.rfind("sha256:", 0) == 0 ? digest.substr(7) : digest;
  std::transform(hex.begin(), hex.end(), hex.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (hex.size() != 64 ||
      !std::all_of(hex.begin(), hex.end(), [](unsigned char c) { return std::isxdigit(c); })) {
    return Status::InvalidArgument("spec digest '" + digest + "' is not sha256:<64 hex digits>");
  }
  return "sha256:" + hex;
}

Result<Approval> FromCanonical(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("approval: not a JSON object");
  }
  static const char* kKeys[] = {"approvedAt",  "approvedBy", "expiresAt",
                                "modelSha256", "name",       "specDigest"};
  for (const auto& [k, v] : j.items()) {
    if (std::find(std::begin(kKeys), std::end(kKeys), k) == std::end(kKeys)) {
      return Status::InvalidArgument("approval: unknown key '" + k + "'");
    }
    if (!v.is_string()) return Status::InvalidArgument("approval: '" + k + "' is not a string");
  }
  Approval a;
  a.approved_at = j.value("approvedAt", "");
  a.approved_by = j.value("approvedBy", "");
  a.expires_at = j.value("expiresAt", "");
  a.model_sha256 = j.value("modelSha256", "");
  a.name = j.value("name", "");
  a.spec_digest = j.value("specDigest", "");
  SEXTANT_ASSIGN_OR_RETURN(std::string digest, NormalizeSpecDigest(a.spec_digest));
  if (digest != a.spec_digest) {
    return Status::InvalidArgument("approval: specDigest is not in normal form");
  }
  if (a.CanonicalJson() != text) return Status::InvalidArgument("approval: not canonical JSON");
  return a;
}

}  // namespace

std::string Approval::CanonicalJson() const {
  nlohmann::json j = {{"approvedAt", approved_at},
                      {"approvedBy", approved_by},
                      {"expiresAt", expires_at},
                      {"modelSha256", model_sha256},
                      {"name", name},
                      {"specDigest", spec_digest}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<int64_t> ParseRfc3339(const std::string& text) {
  std::tm tm{};
  int frac_start = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac_start) != 6) {
    return Status::InvalidArgument("'" + text + "' is not an RFC 3339 UTC time");
  }
  size_t i = static_cast<size_t>(frac_start);
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  }
  if (i + 1 != text.size() || text[i] != 'Z') {
    return Status::InvalidArgument("'" + text + "' is not an RFC 3339 UTC time (ends in Z)");
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm));
}

std::string FormatRfc3339(int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<SignedApproval> SignApproval(Approval a, const report::SigningKey& key) {
  SEXTANT_ASSIGN_OR_RETURN(a.spec_digest, NormalizeSpecDigest(a.spec_digest));
  if (!a.approved_at.empty()) SEXTANT_RETURN_IF_ERROR(ParseRfc3339(a.approved_at).status());
  if (!a.expires_at.empty()) SEXTANT_RETURN_IF_ERROR(ParseRfc3339(a.expires_at).status());
  SignedApproval s;
  s.approval_json = a.CanonicalJson();
  SEXTANT_ASSIGN_OR_RETURN(s.signature, key.Sign(kDomain + s.approval_json));
  s.key_id = key.key_id();
  return s;
}

Result<Approval> VerifyApproval(const SignedApproval& s, const report::VerifyingKey& key) {
  if (s.key_id != key.key_id()) {
    return Status::Unauthenticated("approval signed by key " + s.key_id.substr(0, 16) +
                                   ", not by " + key.key_id().substr(0, 16));
  }
  if (Status v = key.Verify(kDomain + s.approval_json, s.signature); !v.ok()) {
    return Status::Unauthenticated("approval signature does not verify under key " +
                                   key.key_id().substr(0, 16));
  }
  return FromCanonical(s.approval_json);
}

bool Expired(const Approval& a, int64_t now_unix_s) {
  if (a.expires_at.empty()) return false;
  auto t = ParseRfc3339(a.expires_at);
  return !t.ok() || *t <= now_unix_s;
}

nlohmann::json SignedApprovalToJson(const SignedApproval& s) {
  nlohmann::json approval = nlohmann::json::parse(s.approval_json, nullptr, false);
  if (approval.is_discarded()) approval = s.approval_json;
  return {{"approval", approval}, {"signature", s.signature}, {"keyId", s.key_id}};
}

Result<SignedApproval> SignedApprovalFromJson(const nlohmann::json& j) {
  if (!j.is_object() || j.size() != 3 || !j.contains("approval") || !j.contains("signature") ||
      !j.contains("keyId") || !j["signature"].is_string() || !j["keyId"].is_string()) {
    return Status::InvalidArgument(
        "a signed approval is {\"approval\": {...}, \"signature\": \"...\", \"keyId\": \"...\"}");
  }
  SignedApproval s;
  const auto& a = j["approval"];
  s.approval_json = a.is_string()
                        ? a.get<std::string>()
                        : a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s.signature = j["signature"].get<std::string>();
  s.key_id = j["keyId"].get<std::string>();
  return s;
}

}  // namespace sextant::approval
