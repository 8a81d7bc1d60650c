// The gRPC TargetChannel of a rollout: one agent of the console store's targets, reached over
// mutual TLS with the target's CA and the console's client certificate
// (fleet_connector.h's ClientOptionsFor). Apply carries the signed report; Validate calls
// RunValidation with its own, longer deadline (it runs the model).
//
// Thread-safety: the channel is safe for concurrent calls (AgentClient is).
#pragma once

#include <chrono>
#include <memory>

#include "app/console/rollout/rollout.h"
#include "app/console/store/console_database.h"
#include "engine/base/status.h"

namespace sextant::rpc {
struct AgentClientOptions;
}

namespace sextant::rpc {

// Creates the channel (no connection is made until the first call).
Result<std::shared_ptr<console::TargetChannel>> ConnectTargetChannel(
    const console::Target& target, std::chrono::milliseconds call_deadline,
    std::chrono::milliseconds validation_deadline);

// The same from explicit client options (tests, the benchmark).
Result<std::shared_ptr<console::TargetChannel>> ConnectTargetChannel(
    const std::string& name, const rpc::AgentClientOptions& options,
    std::chrono::milliseconds validation_deadline);

}  // namespace sextant::rpc
