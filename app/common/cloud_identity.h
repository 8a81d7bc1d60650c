// The shapes of a cloud machine's identity (instance id, account id) as each provider writes
// them. An agent reads its identity from the instance metadata service or its config and the
// console receives it over the network: both sides check the shape before using it, so a
// malformed or hostile value never reaches a lookup, a query or a view.
//
// Shapes:
//   - aws:   instance "i-" + 8 or 17 lowercase hex digits; account 12 decimal digits;
//   - gcp:   instance 1-20 decimal digits; project id 6-30 of [a-z0-9-], starting with a letter;
//   - azure: instance (vmId) and subscription: a UUID (8-4-4-4-12 hex digits);
//   - on-prem: no instance or account id.
// An empty value is always accepted (unknown).
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "engine/base/status.h"

namespace sextant {

// OK when `id` is empty or has the provider's instance id shape; otherwise InvalidArgument
// naming the provider and the expected shape (the value itself is quoted, cut to 64 bytes).
Status CheckInstanceId(const std::string& provider, const std::string& id);

// The same for the account (AWS account id, GCP project id, Azure subscription id).
Status CheckAccountId(const std::string& provider, const std::string& id);

}  // namespace sextant
