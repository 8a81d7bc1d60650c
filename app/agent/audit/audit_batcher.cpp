#include "app/agent/audit/audit_batcher.h"

#include <future>
#include <vector>

namespace sextant::agent {

AuditBatcher::AuditBatcher(AuditLog& log, Options options)
    : log_(log), options_(options), writer_([this] { Run(); }) {}

AuditBatcher::~AuditBatcher() { Stop(); }

Status AuditBatcher::Submit(AuditEntry entry, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status::Unavailable("the audit writer has stopped");
    if (queue_.size() >= options_.max_queue) {
      return Status::ResourceExhausted("the audit log is behind: " + std::to_string(queue_.size()) +
                                       " records waiting");
    }
    queue_.push_back({std::move(entry), std::move(done)});
  }
  cv_.notify_one();
  return Status();
}

Status AuditBatcher::Append(AuditEntry entry) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> written = promise->get_future();
  SEXTANT_RETURN_IF_ERROR(
      Submit(std::move(entry), [promise](const Status& s) { promise->set_value(s); }));
  return written.get();
}

void AuditBatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  std::lock_guard<std::mutex> join(join_mu_);
  if (writer_.joinable()) writer_.join();
}

AuditBatcher::Stats AuditBatcher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void AuditBatcher::Run() {
  std::vector<Pending> group;
  std::vector<AuditEntry> entries;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has been written
      const size_t n = std::min(queue_.size(), options_.max_batch);
      group.clear();
      for (size_t i = 0; i < n; ++i) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    entries.clear();
    for (const Pending& p : group) entries.push_back(p.entry);
    Result<std::vector<AuditRecord>> written = log_.AppendBatch(entries);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (written.ok()) {
        stats_.records += group.size();
        ++stats_.batches;
        stats_.largest_batch = std::max(stats_.largest_batch, group.size());
      } else {
        stats_.failed += group.size();
      }
    }
    const Status status = written.ok() ? Status() : written.status();
    for (Pending& p : group) {
      if (p.done) p.done(status);
    }
  }
}

}  // namespace sextant::agent
