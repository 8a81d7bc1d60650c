// The console's connections to its agents: one connector per target, each on its own thread,
// so a slow or dead agent never stalls the rest. At most max_concurrent_connects targets set up
// a connection (TCP, TLS handshake, first reads) at once, so a console starting on a thousand
// targets does not drown its host, or theirs, in handshakes. Snapshots from every target are
// written to the store together: one transaction per flush_interval.
//
// A connector dials its target over mutual TLS (the target's CA, the console's client
// certificate and key), reads identity, agent info, inventory, deployments and compliance
// facts (unary calls, each with a deadline), then keeps a WatchMetrics stream open (gRPC
// callback API) whose snapshots become GPU and deployment samples in the console store. It
// re-reads the slower facts every refresh interval. When a call or the stream fails, the
// target's status becomes "error" with the cause in words, and the connector retries with
// exponential backoff (initial → max, with jitter); gRPC's channel does its own connection
// backoff underneath. A target whose stream goes quiet longer than stale_after is marked
// stale since its last report.
//
// RefreshAll is the one-shot form for CLI verbs: every target in parallel, each bounded by the
// call deadline, results in the store.
//
// Thread-safety: FleetConnector's public methods may be called from any thread; callbacks run
// on gRPC's and the connectors' threads and only touch the (thread-safe) store.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "app/common/audit_chain.h"
#include "app/console/store/console_database.h"
#include "engine/base/status.h"

namespace sextant::rpc {
struct AgentClientOptions;
}

namespace sextant::rpc {

// One metrics snapshot taken into the store, for benchmarks and diagnostics.
struct IngestEvent {
  std::string target;
  int gpu_samples = 0;
  int deployment_samples = 0;
  std::chrono::microseconds store_write{0};  // the transaction that wrote it (with its batch)
  std::chrono::microseconds queued{0};       // from its arrival to the start of that write
  int batch_snapshots = 1;                   // snapshots written in that transaction
  bool ok = true;
};

struct ConnectorOptions {
  std::chrono::milliseconds call_deadline{5000};      // every unary call
  int32_t metrics_interval_ms = 5000;                 // WatchMetrics interval
  std::chrono::milliseconds stream_duration{600000};  // a watch's deadline; reopened after
  std::chrono::milliseconds refresh_interval{60000};  // facts, inventory, deployments
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds stale_after{15000};
  // Targets setting up a connection (and RefreshAll's targets in flight) at once; the others
  // wait their turn.
  int max_concurrent_connects = 16;
  // Metrics snapshots of all targets are written together, one transaction this often.
  std::chrono::milliseconds flush_interval{250};
  // Called after every snapshot's store write, on the connector's or gRPC's thread; must be
  // thread-safe and quick. Empty: nothing is called.
  std::function<void(const IngestEvent&)> on_ingest;
};

// The client options for a target: reads its CA, certificate and key files.
Result<rpc::AgentClientOptions> ClientOptionsFor(const console::Target& target,
                                                 std::chrono::milliseconds deadline);

// What `targets test` prints: who the agent says the console is.
struct TargetIdentity {
  std::string identity;
  std::string role;
  std::vector<std::string> allowed_rpcs;
  std::string agent_version;
  std::string build_id;
  std::string agent_name;
};
Result<TargetIdentity> TestTarget(const console::Target& target,
                                  std::chrono::milliseconds deadline);

// One pass over every target, max_concurrent_connects at a time: identity, info, inventory,
// deployments, compliance facts and one metrics snapshot, into the store, with each target's
// status. Returns when every target has answered or failed (each bounded by about 4 call
// deadlines).
std::vector<console::TargetStatus> RefreshAll(console::ConsoleDatabase& store,
                                              const std::vector<console::Target>& targets,
                                              const ConnectorOptions& options);

// The audit log of one target as the console reads it (`sextant audit`): every page of
// ListAuditLog the console's role may read, and the hash chain verified here, from the records,
// with the same checks as the agent's own (audit::AuditChainVerifier) — the console does not
// take the agent's word for it. Records are the whole log when the role's scope is "all" and
// no filter is set; otherwise a filtered view, where only neighbouring records can be linked.
//
// Completeness: the agent signs its head (AuditCheckpoint) with its audit key. Given the head
// the console recorded before (`recorded`), the read asks the agent which hash its log has at
// that seq now, and the readout is intact only when the new head's signature verifies under the
// same key and the log still has the recorded record with the recorded hash: a log cut back or
// re-chained below what the console saw no longer extends it. `next_head` is what to record.
struct AuditReadOptions {
  std::chrono::milliseconds call_deadline{10000};  // each page
  std::string identity;                            // optional filters, as ListAuditLog takes them
  std::string rpc;
  int page_size = 1000;
  std::optional<console::AuditHead> recorded;  // the newest head this console verified before
};

struct AuditReadout {
  std::string target;
  std::string scope;  // "own" or "all"
  std::vector<audit::AuditRecord> records;
  bool whole_chain = false;
  audit::ChainVerification console;  // verified here from `records`
  // What the agent says of its own chain in the last page.
  bool agent_verified = false;
  int64_t agent_head_seq = 0;
  std::string agent_head_hash;
  int64_t agent_first_broken_seq = 0;
  std::string agent_broken_reason;
  // A record whose `canonical` differs from what the console computes from its fields.
  std::string canonical_mismatch;
  // The agent's signed head, its check, and the check against the recorded head.
  bool has_signed_head = false;
  bool signed_head_verifies = false;
  std::string signed_head_problem;
  console::AuditHead next_head;  // the signed head to record (when intact)
  bool extends_recorded = true;  // true when nothing was recorded before
  std::string recorded_problem;  // why the log no longer extends the recorded head
  // Both sides find the chain intact, and where the console holds the agent's head record its
  // hash is the head the agent reports.
  bool intact = false;
  std::string verdict;  // in words: "intact: ..." or the first breakage found
};
Result<AuditReadout> ReadAuditLog(const console::Target& target, const AuditReadOptions& options);

class TargetConnector;
class ConnectGate;
class IngestWriter;

class FleetConnector {
 public:
  FleetConnector(console::ConsoleDatabase* store, ConnectorOptions options);
  ~FleetConnector();  // stops every connector
  FleetConnector(const FleetConnector&) = delete;
  FleetConnector& operator=(const FleetConnector&) = delete;

  // Starts a connector per target (targets already running are left alone).
  void Start(const std::vector<console::Target>& targets);
  // Stops and joins every connector.
  void Stop();
  // The current status of each target (also written to the store on every change).
  std::vector<console::TargetStatus> Statuses();

 private:
  console::ConsoleDatabase* store_;
  ConnectorOptions options_;
  // Declared before the connectors, which use them: destroyed after.
  std::unique_ptr<ConnectGate> gate_;
  std::unique_ptr<IngestWriter> writer_;
  std::mutex mu_;
  std::vector<std::unique_ptr<TargetConnector>> connectors_;  // GUARDED_BY(mu_)
};

}  // namespace sextant::rpc
