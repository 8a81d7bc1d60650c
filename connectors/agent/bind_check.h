// Why an address cannot be listened on, in the operating system's words. gRPC reports only that
// it could not bind; the agent binds a socket of its own the same way (SO_REUSEADDR, never
// SO_REUSEPORT) to name the reason ("Address already in use", "Cannot assign requested
// address", "Permission denied").
// Thread-safety: a free function.
#pragma once

#include <string>

namespace sextant::rpc {

// The OS error of binding `address` ("host:port", "[v6]:port"), or a sentence saying that it
// could be bound here (the listener refused it for another reason) or could not be resolved.
std::string ExplainBindFailure(const std::string& address);

}  // namespace sextant::rpc
