// The names of the facts agents report about their targets, in one place: the console's fleet
// connector writes them (connectors/console/fleet_connector.cpp, from the typed fields of the
// agent's replies), the agent names its own (connectors/agent/agent_server.cpp,
// GetComplianceFacts), and compliance packs, fleet, cost and the console's views read them.
// Facts are stored as text (app/console/store/fact_repository.h); the comment on each key says
// what its value looks like. A key's text never changes once shipped: stored facts and policy
// packs name it.
#pragma once

#include <string>
#include <string_view>

namespace sextant::facts {

// Cloud context (the agent's config or the instance metadata).
inline constexpr std::string_view kCloudProvider = "cloud.provider";  // aws, gcp, azure, on-prem
inline constexpr std::string_view kCloudAccount = "cloud.account";
inline constexpr std::string_view kCloudRegion = "cloud.region";  // eu-west-1
inline constexpr std::string_view kCloudZone = "cloud.zone";
inline constexpr std::string_view kCloudInstanceType = "cloud.instance_type";  // p5.48xlarge
inline constexpr std::string_view kCloudInstanceId = "cloud.instance_id";  // i-0123456789abcdef0
inline constexpr std::string_view kCloudPricing = "cloud.pricing";         // spot, on_demand
inline constexpr std::string_view kCloudSource = "cloud.source";           // config, metadata
inline constexpr std::string_view kCloudGpuModel = "cloud.gpu_model";      // H100 (price lookup)

// The agent itself.
inline constexpr std::string_view kAgentVersion = "agent.version";
inline constexpr std::string_view kAgentBuildId = "agent.build_id";
inline constexpr std::string_view kAgentName = "agent.name";

// The console as the agent sees it (WhoAmI): its identity (URI SAN), role and the RPCs that
// role may call (comma separated, sorted).
inline constexpr std::string_view kConsoleIdentity = "console.identity";
inline constexpr std::string_view kConsoleRole = "console.role";
inline constexpr std::string_view kConsoleAllowedRpcs = "console.allowed_rpcs";

// Transport security: "true"/"false", "TLS1.2"/"1.3", RFC 3339 times, days.
inline constexpr std::string_view kTlsMtlsEnforced = "tls.mtls_enforced";
inline constexpr std::string_view kTlsMinVersion = "tls.min_version";
inline constexpr std::string_view kTlsCertExpiresAt = "tls.cert_expires_at";
inline constexpr std::string_view kTlsCertDaysLeft = "tls.cert_days_left";
// Any number of certificates: tls.cert_not_after.<which> (RFC 3339).
inline constexpr std::string_view kTlsCertNotAfterPrefix = "tls.cert_not_after";
inline constexpr std::string_view kTransportMtls = "transport.mtls";
inline constexpr std::string_view kTransportTlsMinVersion = "transport.tls_min_version";

// The agent's audit log: whether its hash chain verifies ("true"/"false"), its records, head.
inline constexpr std::string_view kAuditChainVerified = "audit.chain_verified";
inline constexpr std::string_view kAuditChainIntact = "audit.chain_intact";  // the agent's own
inline constexpr std::string_view kAuditRecords = "audit.records";
inline constexpr std::string_view kAuditHeadHash = "audit.head_hash";
inline constexpr std::string_view kAuditHeadTime = "audit.head_time";  // RFC 3339
inline constexpr std::string_view kAuditFirstBroken = "audit.first_broken";

// Policy, engine and what leaves the customer's network.
inline constexpr std::string_view kPolicyDigest = "policy.digest";  // sha256:<hex>
inline constexpr std::string_view kEngineBuildId = "engine.build_id";
inline constexpr std::string_view kEgressPayloadBytesToVendor = "egress.payload_bytes_to_vendor";
inline constexpr std::string_view kEgressPolicy = "egress.policy";  // digests-and-figures
inline constexpr std::string_view kEgressPolicyDeclared = "egress.policy_declared";  // older
inline constexpr std::string_view kResidencyProvider = "residency.provider";
inline constexpr std::string_view kResidencyRegion = "residency.region";

// What the vendor's roles may do: role names and RPCs (comma separated).
inline constexpr std::string_view kVendorRole = "vendor.role";
inline constexpr std::string_view kVendorRpcs = "vendor.rpcs";

// How the agent accepts deployments.
inline constexpr std::string_view kDeployConsoleKeys = "deploy.console_keys";  // a count
inline constexpr std::string_view kDeployReportRequired = "deploy.report_required";
inline constexpr std::string_view kDeployModelStoreCheck = "deploy.model_store_check";

// Encryption at rest: storage.<store>.encrypted, or the agent's own <store>.encrypted.
inline constexpr std::string_view kStorageEncryptionAtRest = "storage.encryption_at_rest";
inline constexpr std::string_view kStateDirStore = "state_dir";
inline constexpr std::string_view kModelStore = "model_store";
inline std::string StoreEncrypted(std::string_view store) {
  return "storage." + std::string(store) + ".encrypted";
}
inline std::string OwnStoreEncrypted(std::string_view store) {
  return std::string(store) + ".encrypted";
}

// Per deployment: deployment.<name>.spec_digest, .model_sha256, .engine_build_id.
inline constexpr std::string_view kDeploymentPrefix = "deployment.";
inline constexpr std::string_view kDeploymentSpecDigestField = "spec_digest";
inline std::string DeploymentSpecDigest(std::string_view deployment) {
  return std::string(kDeploymentPrefix) + std::string(deployment) + ".spec_digest";
}
inline std::string DeploymentModelSha256(std::string_view deployment) {
  return std::string(kDeploymentPrefix) + std::string(deployment) + ".model_sha256";
}
inline std::string DeploymentEngineBuildId(std::string_view deployment) {
  return std::string(kDeploymentPrefix) + std::string(deployment) + ".engine_build_id";
}

}  // namespace sextant::facts
