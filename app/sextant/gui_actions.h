// ConnectorConsoleActions: the desktop console's actions (ui::ConsoleActions) implemented with
// the connectors: target tests and audit reads over gRPC/mTLS, validation on the embedded
// engine with the report signed by the console's key and stored, push and rollback through the
// rollout journal, targets added to the store and watched by the FleetConnector.
//
// Thread-safety: every method may be called concurrently from worker threads (the store and the
// connector are thread-safe); none may be called on the GUI thread (they block).
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>

#include "app/console/store/console_database.h"
#include "connectors/console/fleet_connector.h"
#include "ui/console_actions.h"

namespace sextant::cli {

struct GuiActionOptions {
  std::chrono::milliseconds call_deadline{10000};
  std::filesystem::path signing_key;  // empty: report::DefaultSigningKeyPath()
};

class ConnectorConsoleActions : public ui::ConsoleActions {
 public:
  // store and connector are borrowed and must outlive this object.
  ConnectorConsoleActions(console::ConsoleDatabase* store, rpc::FleetConnector* connector,
                          GuiActionOptions options = {});

  Result<ui::TargetTestResult> TestTarget(const std::string& target) override;
  Status AddTarget(const console::Target& target) override;
  Status RemoveTarget(const std::string& target) override;
  Result<ui::AuditFetch> FetchAudit(const std::string& target, int max_records) override;
  Result<ui::ValidationOutcome> Validate(
      const std::string& spec_file, const std::string& model_dir,
      const std::function<void(std::string_view stage, double fraction)>& progress,
      const std::atomic<bool>& cancel) override;
  Result<ui::PushOutcome> Push(const ui::PushArgs& args,
                               const std::function<void(const ui::PushProgress&)>& progress,
                               const std::atomic<bool>& cancel) override;
  Result<ui::PushOutcome> Rollback(
      const std::string& deployment,
      const std::function<void(const ui::PushProgress&)>& progress) override;

 private:
  console::ConsoleDatabase* store_;
  rpc::FleetConnector* connector_;
  GuiActionOptions options_;
  std::mutex connector_mu_;  // serializes Start/Stop of the connector's targets
};

}  // namespace sextant::cli
