// Conversion between sextant::Status and grpc::Status at the wire edge.
// The numeric codes are identical by construction (engine/base/status.h follows gRPC's set).
// Thread-safety: pure functions.
#pragma once

#include <grpcpp/support/status.h>

#include "engine/base/status.h"

namespace sextant {

grpc::Status ToGrpcStatus(const Status& status);
Status FromGrpcStatus(const grpc::Status& status);

}  // namespace sextant
