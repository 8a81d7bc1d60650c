// What someone with write access to an agent's state directory can do to its audit log, for
// tests that must show it is found: edit rows behind the triggers, re-chain from a rewritten
// record (every later hash recomputed, so the chain alone verifies again), and re-sign the
// checkpoint journal with the agent's own key (so the files agree with each other again). Only
// a reader that recorded a signed head before (the console) can still tell.
// Thread-safety: use from one thread, with the agent's log closed or not writing.
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "app/agent/audit/audit_log.h"
#include "app/common/signing.h"
#include "engine/base/sha256.h"
#include "engine/base/status.h"

namespace sextant::test_audit {

inline Status Exec(const std::filesystem::path& state, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open((state / "audit.db").c_str(), &db) != SQLITE_OK) {
    return Status::Unavailable("cannot open audit.db");
  }
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  return rc == SQLITE_OK ? Status() : Status::Internal(msg);
}

// Drops the triggers and runs `sql` on <state>/audit.db.
inline Status Tamper(const std::filesystem::path& state, const std::string& sql) {
  return Exec(state,
              "DROP TRIGGER IF EXISTS audit_log_no_update; "
              "DROP TRIGGER IF EXISTS audit_log_no_delete; " +
                  sql);
}

inline std::vector<agent::AuditRecord> ReadAll(const std::filesystem::path& state) {
  std::vector<agent::AuditRecord> all;
  sqlite3* db = nullptr;
  if (sqlite3_open((state / "audit.db").c_str(), &db) != SQLITE_OK) return all;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT seq, time, identity, role, rpc, target, outcome, prev_hash, hash, "
                     "detail, detail_salt, detail_digest, intent_seq FROM audit_log ORDER BY seq",
                     -1, &st, nullptr);
  auto text = [&](int c) {
    const auto* t = sqlite3_column_text(st, c);
    return std::string(t ? reinterpret_cast<const char*>(t) : "");
  };
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    agent::AuditRecord r;
    r.seq = sqlite3_column_int64(st, 0);
    r.time = text(1);
    r.entry = {text(2), text(3), text(4), text(5), text(6), text(9), sqlite3_column_int64(st, 12)};
    r.prev_hash = text(7);
    r.hash = text(8);
    r.detail_salt = text(10);
    r.detail_digest = text(11);
    all.push_back(r);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return all;
}

// Rewrites record `from` (its target) and recomputes the hashes from there on.
inline Status Rechain(const std::filesystem::path& state, int64_t from) {
  std::vector<agent::AuditRecord> all = ReadAll(state);
  if (from < 2 || from > static_cast<int64_t>(all.size())) {
    return Status::InvalidArgument("no record " + std::to_string(from) + " to rewrite");
  }
  std::string sql = "DROP TRIGGER IF EXISTS audit_log_no_update; BEGIN;";
  std::string prev = all[static_cast<size_t>(from - 2)].hash;
  for (size_t i = static_cast<size_t>(from - 1); i < all.size(); ++i) {
    agent::AuditRecord& r = all[i];
    if (r.seq == from) r.entry.target = "rewritten";
    r.prev_hash = prev;
    r.hash = Sha256Hex(r.prev_hash + r.Canonical());
    prev = r.hash;
    sql += "UPDATE audit_log SET target='" + r.entry.target + "', prev_hash='" + r.prev_hash +
           "', hash='" + r.hash + "' WHERE seq=" + std::to_string(r.seq) + ";";
  }
  return Exec(state, sql + "COMMIT;");
}

// Rewrites the checkpoint journal and the checkpoint row to agree with the records as they are
// now, signed with the agent's own key (read from its state directory).
inline Status ResignJournal(const std::filesystem::path& state) {
  SEXTANT_ASSIGN_OR_RETURN(report::SigningKey key,
                           report::SigningKey::Load(state / agent::kAuditKeyFile));
  std::ofstream journal(state / agent::kAuditJournalFile, std::ios::trunc);
  audit::AuditCheckpoint last;
  for (const auto& r : ReadAll(state)) {
    SEXTANT_ASSIGN_OR_RETURN(last, audit::SignCheckpoint(r.seq, r.hash, r.time, key));
    journal << last.ToJson().dump() << "\n";
  }
  journal.close();
  return Exec(state, "UPDATE audit_checkpoint SET seq=" + std::to_string(last.seq) + ", hash='" +
                         last.hash + "', time='" + last.time + "', signature='" + last.signature +
                         "' WHERE id=1;");
}

}  // namespace sextant::test_audit
