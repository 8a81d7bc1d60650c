// SnapshotLoader: keeps the GUI's ConsoleSnapshot fresh. Every interval (and on Request) it
// reads a snapshot on its own thread; the result reaches the GUI thread as a queued signal. A
// refresh that comes due while one is running is dropped, so a slow store never piles up work.
//
// Thread-safety: a QObject of the GUI thread; the load function runs on the loader's thread.
#pragma once

#include <QObject>
#include <QString>
#include <QThread>
#include <QTimer>
#include <functional>
#include <memory>

#include "engine/base/status.h"
#include "ui/console_snapshot.h"

namespace sextant::ui {

class SnapshotLoader : public QObject {
  Q_OBJECT

 public:
  using LoadFn = std::function<Result<ConsoleSnapshot>()>;
  SnapshotLoader(LoadFn load, int interval_ms, QObject* parent = nullptr);
  ~SnapshotLoader() override;

  void Start();
  void Stop();
  // Loads now unless a load is running.
  void Request();
  const std::shared_ptr<const ConsoleSnapshot>& latest() const { return latest_; }
  int loads() const { return loads_; }

 signals:
  void SnapshotReady(std::shared_ptr<const sextant::ui::ConsoleSnapshot> snapshot);
  void LoadFailed(QString message);

 private:
  LoadFn load_;
  QThread thread_;
  QObject* worker_ = nullptr;  // lives on thread_
  QTimer timer_;
  bool in_flight_ = false;
  int loads_ = 0;
  std::shared_ptr<const ConsoleSnapshot> latest_;
};

}  // namespace sextant::ui

Q_DECLARE_METATYPE(std::shared_ptr<const sextant::ui::ConsoleSnapshot>)
