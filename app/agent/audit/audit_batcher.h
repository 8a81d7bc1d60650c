// AuditBatcher: appends the audit records of a high-rate caller (the inference API, one record
// per call) in groups. Callers queue entries; one writer thread takes every entry queued at that
// moment and appends them with AuditLog::AppendBatch (one transaction, one fsync), then tells
// each caller. Under load a group holds everything that arrived while the previous group was
// being written, so the record rate is the fsync rate times the group size; when idle a record
// is written at once (no timer, no added delay).
//
// The promise to callers: `done` reports OK only once the record is durable, and a caller that
// gets an error (or a refused Submit) must not make the call it was about to make. A failed
// group fails every caller in it: AppendBatch writes all of a group or nothing.
//
// The queue is bounded (Options::max_queue): Submit refuses with RESOURCE_EXHAUSTED when it is
// full, so a disk that stalls turns into refused calls, never into unbounded memory.
//
// Thread-safety: Submit / Append / Stop / stats from any thread. `done` runs on the writer
// thread and must return quickly (it must not call Append, which would wait on itself).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "app/agent/audit/audit_log.h"
#include "engine/base/status.h"

namespace sextant::agent {

class AuditBatcher {
 public:
  struct Options {
    size_t max_queue = 8192;  // entries waiting to be written
    size_t max_batch = 1024;  // entries in one transaction
  };
  using Done = std::function<void(const Status&)>;

  // `log` must outlive the batcher. Starts the writer thread.
  explicit AuditBatcher(AuditLog& log) : AuditBatcher(log, Options{}) {}
  AuditBatcher(AuditLog& log, Options options);
  // Stop().
  ~AuditBatcher();
  AuditBatcher(const AuditBatcher&) = delete;
  AuditBatcher& operator=(const AuditBatcher&) = delete;

  // Queues `entry`; `done` is called once, on the writer thread, with OK when the record is
  // durable or the error that kept it from being written. Errors (done is then never called):
  // RESOURCE_EXHAUSTED when max_queue entries are waiting, UNAVAILABLE after Stop().
  Status Submit(AuditEntry entry, Done done);
  // Submit and wait: OK when the record is durable.
  Status Append(AuditEntry entry);
  // Writes what is queued, then stops the writer. Idempotent.
  void Stop();

  struct Stats {
    uint64_t records = 0;  // written
    uint64_t batches = 0;  // transactions
    uint64_t failed = 0;   // entries whose group could not be written
    size_t largest_batch = 0;
  };
  Stats stats() const;

 private:
  struct Pending {
    AuditEntry entry;
    Done done;
  };
  void Run();

  AuditLog& log_;
  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;      // GUARDED_BY(mu_)
  Stats stats_;                // GUARDED_BY(mu_)
  std::mutex join_mu_;         // serializes Stop()'s join
  std::thread writer_;
};

}  // namespace sextant::agent
