// Transport facts measured, not declared: TLS handshakes from the agent to its own live gRPC
// listener, over loopback, without a client certificate, one per protocol version (TLS 1.0 to
// 1.3). What the listener does is the fact:
//   tls.mtls_enforced  "true" when it asked for a client certificate and refused to go on
//                      without one; "false" when it carried on; "unknown" when no handshake ran
//   tls.min_version    the lowest version it answered with a ServerHello ("TLS1.2"); "unknown"
//                      when it answered none
// A probe never gets past the handshake (it has no certificate), so it reaches no RPC and
// writes no audit record.
//
// Thread-safety: a pure function (blocking, bounded by `timeout` per handshake).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sextant::rpc {

struct TransportFacts {
  std::string mtls_enforced = "unknown";
  std::string mtls_evidence;
  std::string min_version = "unknown";
  std::string version_evidence;  // per version: "TLS1.0 refused, ..., TLS1.3 accepted"
  std::string source;            // "measured: loopback TLS handshakes to HOST:PORT at TIME"
  int64_t measured_at_unix_ms = 0;
};

// host: an address the listener is bound to ("0.0.0.0" and "::" are probed on loopback).
TransportFacts ProbeTransport(const std::string& host, int port,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

}  // namespace sextant::rpc
