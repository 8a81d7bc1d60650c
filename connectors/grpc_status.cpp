#include "connectors/grpc_status.h"

namespace sextant {

static_assert(static_cast<int>(StatusCode::kUnauthenticated) == grpc::StatusCode::UNAUTHENTICATED);
static_assert(static_cast<int>(StatusCode::kPermissionDenied) ==
              grpc::StatusCode::PERMISSION_DENIED);
static_assert(static_cast<int>(StatusCode::kDataLoss) == grpc::StatusCode::DATA_LOSS);

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), status.message());
}

Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return Status();
  const int code = static_cast<int>(status.error_code());
  if (code < 1 || code > static_cast<int>(StatusCode::kUnauthenticated)) {
    return Status::Unknown(status.error_message());
  }
  return Status(static_cast<StatusCode>(code), status.error_message());
}

}  // namespace sextant
