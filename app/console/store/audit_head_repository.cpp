#include "app/console/store/audit_head_repository.h"

#include "app/common/sqlite/sqlite_db.h"
#include "app/console/store/console_database.h"

namespace sextant::console {

Result<std::optional<AuditHead>> AuditHeadRepository::Get(const std::string& target) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("SELECT seq, hash, signed_at, key_id, public_key, signature, "
                              "seen_at FROM audit_heads WHERE target = ?"));
  q.Bind(1, target);
  SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<AuditHead>();
  AuditHead h;
  h.target = target;
  h.seq = q.Int(0);
  h.hash = q.Text(1);
  h.signed_at = q.Text(2);
  h.key_id = q.Text(3);
  h.public_key = q.Text(4);
  h.signature = q.Text(5);
  h.seen_at_ms = q.Int(6);
  return std::optional<AuditHead>(std::move(h));
}

Status AuditHeadRepository::Record(const AuditHead& h) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("INSERT OR REPLACE INTO audit_heads(target, seq, hash, signed_at, "
                              "key_id, public_key, signature, seen_at) VALUES(?,?,?,?,?,?,?,?)"));
  return q.Bind(1, h.target)
      .Bind(2, h.seq)
      .Bind(3, h.hash)
      .Bind(4, h.signed_at)
      .Bind(5, h.key_id)
      .Bind(6, h.public_key)
      .Bind(7, h.signature)
      .Bind(8, h.seen_at_ms)
      .Run()
      .WithContext("record the audit head of " + h.target);
}

Status AuditHeadRepository::RemoveTarget(const std::string& target) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(auto q, s.sql().Prepare("DELETE FROM audit_heads WHERE target = ?"));
  return q.Bind(1, target).Run();
}

}  // namespace sextant::console
