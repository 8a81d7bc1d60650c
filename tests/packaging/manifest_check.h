// Structural security checks of the agent's Kubernetes manifests (packaging/kubernetes): the
// properties a customer's security reviewer relies on, asserted on every change.
// Thread-safety: pure functions of the files they read.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace sextant::packaging {

// Reads every *.yaml under dir (all documents) and returns one line per violated property,
// naming the file, object and field. Empty means every check passed. Checked:
//  - RBAC: namespace-scoped Roles only; no wildcard in apiGroups/resources/verbs; no secrets,
//    pods/exec, pods/attach, pods/portforward; no escalate, bind or impersonate verbs.
//  - Pods (Deployment/DaemonSet): restricted profile: runAsNonRoot, seccomp RuntimeDefault,
//    per container allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities
//    drop ALL and add nothing, not privileged; no hostNetwork/hostPID/hostIPC or hostPath;
//    a GPU limit (nvidia.com/gpu or amd.com/gpu); TLS material from a Secret volume.
//  - NetworkPolicy: one selects the agent's pods with both Ingress and Egress policy types;
//    ingress only on ports 7443 and 8080; egress only to DNS (port 53).
//  - Namespace: enforces the restricted Pod Security Standard.
std::vector<std::string> CheckAgentManifests(const std::filesystem::path& dir);

}  // namespace sextant::packaging
