// The messages the agent's gRPC service accepts, as bytes from the wire, then what the agent
// does with their fields before anything is stored: names and digests checked, the spec JSON
// parsed as the replica manager parses it, the signed report read and verified. Every step
// either refuses with a message or yields a value.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "app/agent/state/desired_state.h"
#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "sextant/v1/agent.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

void CheckRefusal(const sextant::Status& s) {
  if (!s.ok()) SEXTANT_FUZZ_CHECK(!s.message().empty());
}

void Apply(const sextant::v1::ApplyDeploymentRequest& req) {
  static const sextant::report::VerifyingKey key = [] {
    auto k = sextant::report::SigningKey::Generate();
    SEXTANT_FUZZ_CHECK(k.ok());
    return k->public_key();
  }();
  const auto& spec = req.spec();
  CheckRefusal(sextant::agent::ValidateDeploymentName(spec.name()));
  CheckRefusal(sextant::agent::NormalizeDigest(spec.spec_digest(), "spec_digest").status());
  CheckRefusal(sextant::agent::NormalizeDigest(spec.model_sha256(), "model_sha256").status());
  const sextant::spec::SpecParseResult parsed =
      sextant::spec::ParseDeploymentSpec(spec.spec_json());
  if (parsed.ok()) (void)sextant::spec::SpecDigest(parsed.spec);
  if (!req.signed_report_json().empty()) {
    const nlohmann::json j = nlohmann::json::parse(req.signed_report_json(), nullptr, false);
    if (!j.is_object()) return;
    auto signed_report = sextant::report::SignedReportFromJson(j);
    if (!signed_report.ok()) return CheckRefusal(signed_report.status());
    auto verified = sextant::report::VerifySignedReport(*signed_report, key);
    SEXTANT_FUZZ_CHECK(!verified.ok());  // nothing the fuzzer makes is signed by this key
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t* bytes = data + 1;
  const int n = static_cast<int>(size - 1);
  switch (data[0] % 6) {
    case 0: {
      sextant::v1::ApplyDeploymentRequest req;
      if (req.ParseFromArray(bytes, n)) Apply(req);
      break;
    }
    case 1: {
      sextant::v1::DeleteDeploymentRequest req;
      if (req.ParseFromArray(bytes, n)) {
        CheckRefusal(sextant::agent::ValidateDeploymentName(req.name()));
      }
      break;
    }
    case 2: {
      sextant::v1::RunValidationRequest req;
      (void)req.ParseFromArray(bytes, n);
      break;
    }
    case 3: {
      sextant::v1::ListAuditLogRequest req;
      (void)req.ParseFromArray(bytes, n);
      break;
    }
    case 4: {
      sextant::v1::WatchMetricsRequest req;
      (void)req.ParseFromArray(bytes, n);
      break;
    }
    default: {
      sextant::v1::GetDeploymentRequest req;
      if (req.ParseFromArray(bytes, n)) {
        CheckRefusal(sextant::agent::ValidateDeploymentName(req.name()));
      }
      break;
    }
  }
  return 0;
}
