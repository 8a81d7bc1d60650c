// CallResult<T>: a value, or the CallError of the provider call that failed (its API name,
// region, the provider's error code, message and a hint). The cloud connectors return it so a
// view can show the error code and the hint, not only a message; ToStatus() turns it into the
// project's Status where a caller wants one.
//
// Thread-safety: a value type.
#pragma once

#include <utility>
#include <variant>

#include "app/console/cloud/cloud_types.h"
#include "engine/base/status.h"

namespace sextant::cloud {

using console::cloud::CallError;

// The Status code for a provider error code (AccessDenied -> PERMISSION_DENIED, ExpiredToken ->
// UNAUTHENTICATED, throttling -> RESOURCE_EXHAUSTED, transport -> UNAVAILABLE ...).
StatusCode StatusCodeFor(const CallError& e);
inline Status ToStatus(const CallError& e) { return Status(StatusCodeFor(e), e.ToString()); }

template <typename T>
class [[nodiscard]] CallResult {
 public:
  CallResult(T value) : data_(std::move(value)) {}          // NOLINT(runtime/explicit)
  CallResult(CallError error) : data_(std::move(error)) {}  // NOLINT(runtime/explicit)

  bool ok() const { return std::holds_alternative<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T& value() & { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  // REQUIRES: !ok().
  const CallError& error() const { return std::get<CallError>(data_); }
  Status status() const { return ok() ? Status::Ok() : ToStatus(error()); }

 private:
  std::variant<T, CallError> data_;
};

}  // namespace sextant::cloud
