#include "ui/snapshot_loader.h"

#include <QMetaObject>

namespace sextant::ui {

SnapshotLoader::SnapshotLoader(LoadFn load, int interval_ms, QObject* parent)
    : QObject(parent), load_(std::move(load)) {
  qRegisterMetaType<std::shared_ptr<const ConsoleSnapshot>>();
  worker_ = new QObject();
  worker_->moveToThread(&thread_);
  thread_.setObjectName("snapshot-loader");
  thread_.start();
  timer_.setInterval(interval_ms);
  connect(&timer_, &QTimer::timeout, this, &SnapshotLoader::Request);
}

SnapshotLoader::~SnapshotLoader() {
  timer_.stop();
  thread_.quit();
  thread_.wait();
  delete worker_;  // its thread has finished
}

void SnapshotLoader::Start() {
  timer_.start();
  Request();
}

void SnapshotLoader::Stop() { timer_.stop(); }

void SnapshotLoader::Request() {
  if (in_flight_) return;
  in_flight_ = true;
  QMetaObject::invokeMethod(
      worker_,
      [this] {
        auto result = std::make_shared<Result<ConsoleSnapshot>>(load_());
        // Queued to this object on the GUI thread; dropped if it is gone (the destructor waits
        // for this thread first anyway).
        QMetaObject::invokeMethod(
            this,
            [this, result] {
              in_flight_ = false;
              ++loads_;
              if (!result->ok()) {
                emit LoadFailed(QString::fromStdString(result->status().message()));
                return;
              }
              latest_ = std::make_shared<const ConsoleSnapshot>(std::move(result->value()));
              emit SnapshotReady(latest_);
            },
            Qt::QueuedConnection);
      },
      Qt::QueuedConnection);
}

}  // namespace sextant::ui
