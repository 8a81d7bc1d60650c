#include "app/console/store/audit_head_store.h"

#include <sqlite3.h>

#include <memory>

namespace sextant::console {

namespace {

constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS audit_heads(target TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
    "hash TEXT NOT NULL, signed_at TEXT NOT NULL, key_id TEXT NOT NULL, "
    "public_key TEXT NOT NULL, signature TEXT NOT NULL, seen_at INTEGER NOT NULL)";

struct Finalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, Finalize>;

Status Error(sqlite3* db, const std::string& what) {
  return Status::Unavailable(what + ": " + sqlite3_errmsg(db));
}

Result<Stmt> Prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
    return Error(db, "audit_heads");
  }
  return Stmt(s);
}

std::string Text(sqlite3_stmt* s, int col) {
  const auto* t = sqlite3_column_text(s, col);
  return t ? reinterpret_cast<const char*>(t) : "";
}

}  // namespace

Status AuditHeadStore::EnsureSchema(sqlite3* db) {
  char* err = nullptr;
  if (sqlite3_exec(db, kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::Unavailable("audit_heads: " + msg);
  }
  return Status();
}

Result<std::optional<AuditHead>> AuditHeadStore::Get(const std::string& target) {
  SEXTANT_ASSIGN_OR_RETURN(
      Stmt s, Prepare(db_,
                      "SELECT seq, hash, signed_at, key_id, public_key, signature, seen_at "
                      "FROM audit_heads WHERE target = ?"));
  sqlite3_bind_text(s.get(), 1, target.c_str(), -1, SQLITE_TRANSIENT);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::optional<AuditHead>();
  if (rc != SQLITE_ROW) return Error(db_, "reading the audit head of " + target);
  AuditHead h;
  h.target = target;
  h.seq = sqlite3_column_int64(s.get(), 0);
  h.hash = Text(s.get(), 1);
  h.signed_at = Text(s.get(), 2);
  h.key_id = Text(s.get(), 3);
  h.public_key = Text(s.get(), 4);
  h.signature = Text(s.get(), 5);
  h.seen_at_ms = sqlite3_column_int64(s.get(), 6);
  return std::optional<AuditHead>(h);
}

Status AuditHeadStore::Record(const AuditHead& h) {
  SEXTANT_ASSIGN_OR_RETURN(
      Stmt s, Prepare(db_,
                      "INSERT OR REPLACE INTO audit_heads (target, seq, hash, signed_at, "
                      "key_id, public_key, signature, seen_at) VALUES (?,?,?,?,?,?,?,?)"));
  sqlite3_bind_text(s.get(), 1, h.target.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s.get(), 2, h.seq);
  sqlite3_bind_text(s.get(), 3, h.hash.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 4, h.signed_at.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 5, h.key_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 6, h.public_key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 7, h.signature.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s.get(), 8, h.seen_at_ms);
  if (sqlite3_step(s.get()) != SQLITE_DONE)
    return Error(db_, "recording the audit head of " + h.target);
  return Status();
}

}  // namespace sextant::console
