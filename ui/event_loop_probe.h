// EventLoopProbe: measures how late the GUI thread's event loop serves queued work. A probe
// thread posts a time-stamped call to the GUI thread every `period`; the delay between posting
// and running is one sample. p99 of these is what a user feels as "the window froze".
//
// Thread-safety: construct, Start, Stop and read samples on the GUI thread; the probe thread
// only posts.
#pragma once

#include <QMetaObject>
#include <QObject>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace sextant::ui {

class EventLoopProbe : public QObject {
 public:
  explicit EventLoopProbe(std::chrono::milliseconds period, QObject* parent = nullptr)
      : QObject(parent), period_(period) {}
  ~EventLoopProbe() override { Stop(); }

  void Start() {
    running_ = true;
    thread_ = std::thread([this] {
      while (running_.load()) {
        const auto t0 = std::chrono::steady_clock::now();
        QMetaObject::invokeMethod(
            this,
            [this, t0] {
              samples_.push_back(
                  std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                      .count());
            },
            Qt::QueuedConnection);
        std::this_thread::sleep_for(period_);
      }
    });
  }
  void Stop() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
  }
  const std::vector<double>& samples() const { return samples_; }
  // The q-quantile (0..1) of the samples in milliseconds; 0 when there are none.
  double Quantile(double q) const {
    if (samples_.empty()) return 0;
    std::vector<double> s = samples_;
    std::sort(s.begin(), s.end());
    const size_t i = std::min(s.size() - 1, static_cast<size_t>(q * static_cast<double>(s.size())));
    return s[i];
  }

 private:
  std::chrono::milliseconds period_;
  std::atomic<bool> running_{false};
  std::thread thread_;
  std::vector<double> samples_;
};

}  // namespace sextant::ui
