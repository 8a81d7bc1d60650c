// The console database's accounts and targets (agent endpoints with their CA, client certificate
// and key paths and labels), and each target's connection status. Part of ConsoleDatabase
// (console_database.h): its threading model and error mapping apply.
#pragma once

#include <string>
#include <vector>

#include "app/console/store/records.h"
#include "engine/base/status.h"

namespace sextant::console {

class ConsoleDatabase;

class AccountRepository {
 public:
  explicit AccountRepository(ConsoleDatabase* db) : db_(db) {}
  // ALREADY_EXISTS on a duplicate name, INVALID_ARGUMENT without a name or provider.
  Status Add(const Account& account);
  // NOT_FOUND when there is no such account.
  Status Remove(const std::string& name);
  Result<std::vector<Account>> List();

 private:
  ConsoleDatabase* db_;
};

class TargetRepository {
 public:
  explicit TargetRepository(ConsoleDatabase* db) : db_(db) {}
  // ALREADY_EXISTS on a duplicate name, INVALID_ARGUMENT without a name or endpoint.
  Status Add(const Target& target);
  // Removes the target with its status, facts, inventory and history, in one transaction.
  // NOT_FOUND when there is no such target.
  Status Remove(const std::string& name);
  Result<std::vector<Target>> List();  // by name
  // NOT_FOUND when there is no such target.
  Result<Target> Get(const std::string& name);

  Status SetStatus(const TargetStatus& status);
  Result<std::vector<TargetStatus>> ListStatus();  // by target

 private:
  ConsoleDatabase* db_;
};

}  // namespace sextant::console
