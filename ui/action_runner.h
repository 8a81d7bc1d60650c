// ActionRunner: runs blocking work (ConsoleActions calls, store reads) on its own thread pool
// and delivers results and progress to the GUI thread as queued calls, so that nothing waits on
// the wire, the engine or the store on the GUI thread.
//
// Lifetime: queued deliveries target the runner itself; its destructor raises every cancel flag
// it handed out and waits for the pool, so a delivery never reaches a destroyed receiver (Qt
// drops events queued for a deleted object). Create it before the widgets whose callbacks it
// runs, with the same parent, so that it is destroyed first.
//
// Thread-safety: Run and Post may be called from any thread; callbacks run on the runner's
// thread (the GUI thread).
#pragma once

#include <QMetaObject>
#include <QObject>
#include <QThreadPool>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace sextant::ui {

class ActionRunner : public QObject {
 public:
  explicit ActionRunner(QObject* parent = nullptr, int threads = 4) : QObject(parent) {
    pool_.setMaxThreadCount(threads);
  }
  ~ActionRunner() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& c : cancels_) c->store(true);
    }
    pool_.waitForDone();
  }

  // A cancel flag that the destructor raises too.
  std::shared_ptr<std::atomic<bool>> NewCancelFlag() {
    auto flag = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard<std::mutex> lock(mu_);
    cancels_.push_back(flag);
    return flag;
  }

  // Runs work() on the pool, then done(result) on the GUI thread.
  template <typename T>
  void Run(std::function<T()> work, std::function<void(T)> done) {
    pool_.start([this, work = std::move(work), done = std::move(done)]() mutable {
      auto result = std::make_shared<T>(work());
      QMetaObject::invokeMethod(
          this, [done = std::move(done), result]() mutable { done(std::move(*result)); },
          Qt::QueuedConnection);
    });
  }

  // Calls fn on the GUI thread (from a worker: progress).
  void Post(std::function<void()> fn) {
    QMetaObject::invokeMethod(this, std::move(fn), Qt::QueuedConnection);
  }

  // Blocks until every started job has finished (tests, shutdown).
  void WaitForIdle() { pool_.waitForDone(); }
  // The same, for at most timeout_ms; false when a job was still running then.
  bool WaitForIdle(int timeout_ms) { return pool_.waitForDone(timeout_ms); }
  // Jobs running now (not counting queued ones).
  int active_jobs() const { return pool_.activeThreadCount(); }

 private:
  QThreadPool pool_;
  std::mutex mu_;
  std::vector<std::shared_ptr<std::atomic<bool>>> cancels_;  // GUARDED_BY(mu_)
};

}  // namespace sextant::ui
