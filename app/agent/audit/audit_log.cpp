#include "app/agent/audit/audit_log.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/agent/config/json_log.h"
#include "engine/base/sha256.h"
#include "engine/base/time.h"

namespace sextant::agent {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  time TEXT NOT NULL,
  identity TEXT NOT NULL,
  role TEXT NOT NULL,
  rpc TEXT NOT NULL,
  target TEXT NOT NULL,
  outcome TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TABLE IF NOT EXISTS audit_checkpoint (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL, hash TEXT NOT NULL, time TEXT NOT NULL,
  key_id TEXT NOT NULL, signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
)sql";

// Columns added after the first release (ALTER TABLE on files that lack them).
constexpr const char* kAddedColumns[][2] = {
    {"detail", "TEXT NOT NULL DEFAULT ''"},
    {"detail_salt", "TEXT NOT NULL DEFAULT ''"},
    {"detail_digest", "TEXT NOT NULL DEFAULT ''"},
    {"intent_seq", "INTEGER NOT NULL DEFAULT 0"},
};

constexpr const char* kColumns =
    "seq, time, identity, role, rpc, target, outcome, prev_hash, hash, detail, detail_salt, "
    "detail_digest, intent_seq";

AuditRecord ReadRecord(const SqliteStmt& s) {
  AuditRecord r;
  r.seq = s.Int(0);
  r.time = s.Text(1);
  r.entry.identity = s.Text(2);
  r.entry.role = s.Text(3);
  r.entry.rpc = s.Text(4);
  r.entry.target = s.Text(5);
  r.entry.outcome = s.Text(6);
  r.prev_hash = s.Text(7);
  r.hash = s.Text(8);
  r.entry.detail = s.Text(9);
  r.detail_salt = s.Text(10);
  r.detail_digest = s.Text(11);
  r.entry.intent_seq = s.Int(12);
  return r;
}

Status EnsureSchema(SqliteDb& db) {
  SEXTANT_RETURN_IF_ERROR(db.Exec(kSchema));
  std::set<std::string> have;
  {
    SEXTANT_ASSIGN_OR_RETURN(auto st, db.Prepare("PRAGMA table_info(audit_log)"));
    while (true) {
      SEXTANT_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      have.insert(st.Text(1));
    }
  }
  for (const auto& [name, type] : kAddedColumns) {
    if (have.count(name)) continue;
    SEXTANT_RETURN_IF_ERROR(
        db.Exec(std::string("ALTER TABLE audit_log ADD COLUMN ") + name + " " + type));
  }
  SEXTANT_RETURN_IF_ERROR(db.Exec(
      "CREATE INDEX IF NOT EXISTS audit_log_intent ON audit_log(intent_seq) WHERE intent_seq > 0"));
  // Outcome records name their intent from here on: earlier "allowed" records have no outcome
  // record to find, and are never reported as interrupted.
  SEXTANT_ASSIGN_OR_RETURN(
      auto st, db.Prepare("INSERT OR IGNORE INTO audit_meta (key, value) SELECT "
                          "'outcomes_linked_after', COALESCE(MAX(seq), 0) FROM audit_log"));
  return st.Run();
}

Result<std::pair<int64_t, std::string>> ReadHead(SqliteDb& db) {
  SEXTANT_ASSIGN_OR_RETURN(auto stmt,
                           db.Prepare("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"));
  SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::make_pair(int64_t{0}, std::string(kGenesisHash));
  return std::make_pair(stmt.Int(0), stmt.Text(1));
}

Result<std::optional<std::string>> ReadHashAt(SqliteDb& db, int64_t seq) {
  SEXTANT_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT hash FROM audit_log WHERE seq = ?"));
  st.Bind(1, seq);
  SEXTANT_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.Text(0));
}

// Verifies the records after (from_seq, from_hash), in rowid order, continuing `verifier`.
Result<ChainVerification> VerifyRows(SqliteDb& db, AuditChainVerifier verifier, int64_t from_seq) {
  SEXTANT_ASSIGN_OR_RETURN(auto stmt, db.Prepare(std::string("SELECT ") + kColumns +
                                                 " FROM audit_log WHERE seq > ? ORDER BY rowid"));
  stmt.Bind(1, from_seq);
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row || !verifier.Add(ReadRecord(stmt))) break;
  }
  return verifier.result();
}

Result<ChainVerification> VerifyDb(SqliteDb& db) {
  return VerifyRows(db, AuditChainVerifier(/*whole_chain=*/true), 0);
}

// Reads the journal's lines (1-based line numbers). A missing journal is an empty one.
Result<std::vector<std::pair<int, std::string>>> ReadJournal(const std::filesystem::path& path) {
  std::vector<std::pair<int, std::string>> out;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return out;
    return Status::Unavailable("cannot read the checkpoint journal " + path.string());
  }
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty()) out.emplace_back(n, line);
  }
  return out;
}

// Checks the journal's checkpoints against the records (hash_at: a record's hash, nullopt when
// absent). Fills v with the first problem (when v is still intact) and the checkpoint counts.
Status CheckCheckpoints(const std::vector<std::pair<int, std::string>>& lines,
                        const std::filesystem::path& journal, const report::VerifyingKey& key,
                        int64_t head_seq,
                        const std::function<Result<std::optional<std::string>>(int64_t)>& hash_at,
                        ChainVerification* v) {
  v->checkpoint_key_id = key.key_id();
  const std::string where = journal.filename().string();
  auto fail = [&](int64_t seq, std::string why) {
    if (!v->intact) return;
    v->intact = false;
    v->first_broken_seq = seq;
    v->reason = std::move(why);
  };
  if (lines.empty() && head_seq > 0) {
    fail(0, "no signed checkpoint in " + journal.string() + " for a log of " +
                std::to_string(head_seq) +
                " records: the journal is missing or emptied, so completeness cannot be proved");
    return Status();
  }
  int64_t prev_seq = -1;
  int prev_line = 0;
  int64_t last_match = 0;
  for (const auto& [line_no, text] : lines) {
    const std::string at = where + " line " + std::to_string(line_no);
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    auto c = AuditCheckpoint::FromJson(j);
    if (j.is_discarded() || !c.ok()) {
      fail(0, at + ": malformed checkpoint" +
                  (c.ok() ? std::string(" (not JSON)") : " (" + c.status().message() + ")"));
      return Status();
    }
    if (Status s = audit::VerifyCheckpoint(*c, key); !s.ok()) {
      fail(c->seq, at + ": " + s.message() + ": a checkpoint not made by this agent");
      return Status();
    }
    if (c->seq < prev_seq) {
      fail(c->seq + 1, at + ": the checkpoints go back from seq " + std::to_string(prev_seq) +
                           " (line " + std::to_string(prev_line) + ") to seq " +
                           std::to_string(c->seq) + ": the log was cut back to seq " +
                           std::to_string(c->seq) + " after seq " + std::to_string(prev_seq) +
                           " had been signed, and written again from there");
      return Status();
    }
    prev_seq = c->seq;
    prev_line = line_no;
    v->newest_checkpoint_seq = std::max(v->newest_checkpoint_seq, c->seq);
    if (c->seq == 0) {
      ++v->checkpoints;
      continue;
    }
    if (c->seq > head_seq) {
      // The newest checkpoint says by how much the log was cut.
      const auto& [last_line, last_text] = lines.back();
      auto newest = AuditCheckpoint::FromJson(nlohmann::json::parse(last_text, nullptr, false));
      const int64_t signed_seq = newest.ok() ? std::max(newest->seq, c->seq) : c->seq;
      fail(head_seq + 1, "truncated: the log ends at seq " + std::to_string(head_seq) +
                             " but the agent signed a checkpoint of seq " +
                             std::to_string(signed_seq) + " (" + where + " line " +
                             std::to_string(newest.ok() ? last_line : line_no) + "): records " +
                             std::to_string(head_seq + 1) + ".." + std::to_string(signed_seq) +
                             " are missing");
      return Status();
    }
    SEXTANT_ASSIGN_OR_RETURN(std::optional<std::string> have, hash_at(c->seq));
    if (!have) {
      fail(c->seq, "record " + std::to_string(c->seq) + " is missing, but " + at +
                       " signed it (seq " + std::to_string(c->seq) + ")");
      return Status();
    }
    if (*have != c->hash) {
      fail(last_match + 1,
           "re-chained: record " + std::to_string(c->seq) + " hashes to " + have->substr(0, 16) +
               "... but " + at + " (signed " + c->time + ") says " + c->hash.substr(0, 16) +
               "...: the records after seq " + std::to_string(last_match) +
               " (the last one whose signed checkpoint matches) were rewritten, from seq " +
               std::to_string(last_match + 1) + " at the latest to seq " + std::to_string(c->seq));
      return Status();
    }
    last_match = c->seq;
    ++v->checkpoints;
  }
  return Status();
}

std::string RandomSaltHex() {
  uint8_t salt[16];
  if (RAND_bytes(salt, sizeof(salt)) != 1) {
    // Never happens with a working OpenSSL; a constant-free fallback keeps the record writable.
    const int64_t t = NowMs();
    std::memcpy(salt, &t, sizeof(t));
    const int64_t p = ::getpid();
    std::memcpy(salt + 8, &p, sizeof(p));
  }
  return ToHex(salt);
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::filesystem::path& dir) {
  const auto path = dir / "audit.db";
  SEXTANT_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path));
  SEXTANT_RETURN_IF_ERROR(EnsureSchema(*db).WithContext(path.string()));
  SEXTANT_ASSIGN_OR_RETURN(report::SigningKey key,
                           report::SigningKey::LoadOrCreate(dir / kAuditKeyFile));
  std::unique_ptr<AuditLog> log(
      new AuditLog(std::move(db), path, dir / kAuditJournalFile, std::move(key)));
  std::lock_guard<std::mutex> lock(log->mu_);
  // The whole chain and the journal, once.
  SEXTANT_ASSIGN_OR_RETURN(ChainVerification v, VerifyDb(*log->db_));
  SEXTANT_ASSIGN_OR_RETURN(auto head, ReadHead(*log->db_));
  SEXTANT_ASSIGN_OR_RETURN(auto lines, ReadJournal(log->journal_path_));
  if (v.intact) {
    SqliteDb& dbref = *log->db_;
    SEXTANT_RETURN_IF_ERROR(CheckCheckpoints(
        lines, log->journal_path_, log->key_.public_key(), head.first,
        [&dbref](int64_t seq) { return ReadHashAt(dbref, seq); }, &v));
  }
  log->checkpoints_ = v.checkpoints;
  if (v.intact) {
    log->verified_seq_ = head.first;
    log->verified_hash_ = head.second;
  } else {
    log->verified_seq_ = v.head_seq;
    log->verified_hash_ = v.head_hash;
    log->broken_ = v;
  }
  log->journal_fd_ =
      ::open(log->journal_path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (log->journal_fd_ < 0) {
    return Status::Unavailable("cannot open the checkpoint journal " + log->journal_path_.string() +
                               ": " + std::strerror(errno));
  }
  // The newest checkpoint: from the database, re-signed when it is not of the head (a log from
  // before checkpoints, or a crash between the commit and the journal).
  {
    SEXTANT_ASSIGN_OR_RETURN(auto st, log->db_->Prepare("SELECT seq, hash, time, key_id, signature "
                                                        "FROM audit_checkpoint WHERE id = 1"));
    SEXTANT_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      AuditCheckpoint c{st.Int(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4)};
      if (audit::VerifyCheckpoint(c, log->key_.public_key()).ok()) log->latest_checkpoint_ = c;
    }
  }
  const bool journal_behind = lines.empty() || v.newest_checkpoint_seq < head.first;
  if (!log->latest_checkpoint_ || log->latest_checkpoint_->seq != head.first ||
      log->latest_checkpoint_->hash != head.second || journal_behind) {
    SEXTANT_ASSIGN_OR_RETURN(
        AuditCheckpoint c,
        audit::SignCheckpoint(head.first, head.second, audit::NowRfc3339Ms(), log->key_));
    SEXTANT_ASSIGN_OR_RETURN(
        auto st,
        log->db_->Prepare("INSERT OR REPLACE INTO audit_checkpoint "
                          "(id, seq, hash, time, key_id, signature) VALUES (1,?,?,?,?,?)"));
    SEXTANT_RETURN_IF_ERROR(st.Bind(1, c.seq)
                                .Bind(2, c.hash)
                                .Bind(3, c.time)
                                .Bind(4, c.key_id)
                                .Bind(5, c.signature)
                                .Run());
    SEXTANT_RETURN_IF_ERROR(log->WriteJournalLocked(c));
    log->latest_checkpoint_ = c;
    ::fsync(log->journal_fd_);
  }
  return log;
}

AuditLog::~AuditLog() {
  if (journal_fd_ >= 0) {
    ::fsync(journal_fd_);
    ::close(journal_fd_);
  }
}

Status AuditLog::WriteJournalLocked(const AuditCheckpoint& c) {
  const std::string line = c.ToJson().dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(journal_fd_, line.data() + off, line.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Unavailable("cannot append to the checkpoint journal " +
                                 journal_path_.string() + ": " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  const int64_t now = NowMs();
  if (now - last_fsync_ms_ >= 250) {
    ::fdatasync(journal_fd_);
    last_fsync_ms_ = now;
  }
  ++checkpoints_;
  return Status();
}

void AuditLog::MarkBrokenLocked(int64_t seq, std::string reason) const {
  if (broken_) return;
  ChainVerification v;
  v.intact = false;
  v.records = verified_seq_;
  v.head_seq = verified_seq_;
  v.head_hash = verified_hash_;
  v.first_broken_seq = seq;
  v.reason = std::move(reason);
  broken_ = v;
}

Status AuditLog::CatchUpLocked() const {
  if (broken_) return Status();
  SEXTANT_ASSIGN_OR_RETURN(auto head, ReadHead(*db_));
  if (head.first == verified_seq_ && head.second == verified_hash_) return Status();
  if (head.first < verified_seq_) {
    MarkBrokenLocked(
        head.first + 1,
        "truncated: the log ends at seq " + std::to_string(head.first) + " but records up to seq " +
            std::to_string(verified_seq_) + " were verified and signed by this agent: records " +
            std::to_string(head.first + 1) + ".." + std::to_string(verified_seq_) + " are missing");
    return Status();
  }
  if (verified_seq_ > 0) {
    SEXTANT_ASSIGN_OR_RETURN(std::optional<std::string> at, ReadHashAt(*db_, verified_seq_));
    if (!at || *at != verified_hash_) {
      MarkBrokenLocked(verified_seq_,
                       "re-chained: record " + std::to_string(verified_seq_) +
                           (at ? " now hashes to " + at->substr(0, 16) + "..." : " is gone") +
                           " but this agent verified and signed it as " +
                           verified_hash_.substr(0, 16) + "...: records at or before seq " +
                           std::to_string(verified_seq_) + " were rewritten");
      return Status();
    }
  }
  // Records appended by another writer of the same file: verify only those.
  SEXTANT_ASSIGN_OR_RETURN(
      ChainVerification v,
      VerifyRows(*db_, AuditChainVerifier(verified_seq_, verified_hash_), verified_seq_));
  verified_seq_ = v.head_seq;
  verified_hash_ = v.head_hash;
  if (!v.intact) broken_ = v;
  return Status();
}

Result<AuditRecord> AuditLog::Append(const AuditEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  return AppendLocked(entry);
}

Result<AuditRecord> AuditLog::AppendLocked(const AuditEntry& entry) {
  SEXTANT_ASSIGN_OR_RETURN(std::vector<AuditRecord> records, AppendBatchLocked({entry}));
  return std::move(records.front());
}

Result<std::vector<AuditRecord>> AuditLog::AppendBatch(const std::vector<AuditEntry>& entries) {
  if (entries.empty()) return std::vector<AuditRecord>();
  std::lock_guard<std::mutex> lock(mu_);
  return AppendBatchLocked(entries);
}

Result<std::vector<AuditRecord>> AuditLog::AppendBatchLocked(
    const std::vector<AuditEntry>& entries) {
  SEXTANT_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto rollback = [&](Status s) {
    (void)db_->Exec("ROLLBACK");
    return s.WithContext("audit log append");
  };
  // The head is read inside the transaction: another process (`sextant-agent apikeys`) may
  // have appended since the last append.
  if (Status s = CatchUpLocked(); !s.ok()) return rollback(s);
  auto head = ReadHead(*db_);
  if (!head.ok()) return rollback(head.status());
  auto stmt = db_->Prepare(std::string("INSERT INTO audit_log (") + kColumns +
                           ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!stmt.ok()) return rollback(stmt.status());
  const std::string time = FormatRfc3339Millis(NowMs());
  std::vector<AuditRecord> out;
  out.reserve(entries.size());
  int64_t seq = head->first;
  std::string prev = head->second;
  for (const AuditEntry& entry : entries) {
    AuditRecord r;
    r.seq = ++seq;
    r.time = time;
    r.entry = audit::CapAuditEntry(entry);
    r.prev_hash = prev;
    if (!r.entry.detail.empty()) {
      r.detail_salt = RandomSaltHex();
      r.detail_digest = audit::DetailDigest(r.detail_salt, r.entry.detail);
    }
    r.hash = Sha256Hex(r.prev_hash + r.Canonical());
    stmt->Bind(1, r.seq)
        .Bind(2, r.time)
        .Bind(3, r.entry.identity)
        .Bind(4, r.entry.role)
        .Bind(5, r.entry.rpc)
        .Bind(6, r.entry.target)
        .Bind(7, r.entry.outcome)
        .Bind(8, r.prev_hash)
        .Bind(9, r.hash)
        .Bind(10, r.entry.detail)
        .Bind(11, r.detail_salt)
        .Bind(12, r.detail_digest)
        .Bind(13, r.entry.intent_seq);
    if (Status s = stmt->Run(); !s.ok()) return rollback(s);
    prev = r.hash;
    out.push_back(std::move(r));
  }
  // One signed checkpoint for the batch: its newest record.
  const AuditRecord& last = out.back();
  auto checkpoint = audit::SignCheckpoint(last.seq, last.hash, last.time, key_);
  if (!checkpoint.ok()) return rollback(checkpoint.status());
  auto cst = db_->Prepare(
      "INSERT OR REPLACE INTO audit_checkpoint (id, seq, hash, time, key_id, signature) "
      "VALUES (1,?,?,?,?,?)");
  if (!cst.ok()) return rollback(cst.status());
  Status s = cst->Bind(1, checkpoint->seq)
                 .Bind(2, checkpoint->hash)
                 .Bind(3, checkpoint->time)
                 .Bind(4, checkpoint->key_id)
                 .Bind(5, checkpoint->signature)
                 .Run();
  if (!s.ok()) return rollback(s);
  s = db_->Exec("COMMIT");
  if (!s.ok()) return rollback(s);
  // The records are durable; the journal copy follows (a crash in between is caught up on Open).
  // A journal that cannot be written lags behind (the next append or Open writes a newer
  // checkpoint); the records stand.
  if (Status j = WriteJournalLocked(*checkpoint); !j.ok()) {
    LogEvent(spdlog::level::err, "audit_journal_write_failed", {{"error", j.message()}});
  }
  latest_checkpoint_ = *checkpoint;
  if (!broken_ && out.front().prev_hash == verified_hash_ && out.front().seq == verified_seq_ + 1) {
    verified_seq_ = last.seq;
    verified_hash_ = last.hash;
  }
  return out;
}

Result<std::vector<AuditRecord>> AuditLog::Query(const AuditQuery& q) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = std::string("SELECT ") + kColumns + " FROM audit_log WHERE seq > ?";
  if (!q.identity.empty()) sql += " AND identity = ?";
  if (!q.rpc.empty()) sql += " AND rpc = ?";
  sql += " ORDER BY seq LIMIT ?";
  SEXTANT_ASSIGN_OR_RETURN(auto stmt, db_->Prepare(sql));
  int i = 1;
  stmt.Bind(i++, q.after_seq);
  if (!q.identity.empty()) stmt.Bind(i++, q.identity);
  if (!q.rpc.empty()) stmt.Bind(i++, q.rpc);
  stmt.Bind(i++, static_cast<int64_t>(q.limit));
  std::vector<AuditRecord> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    out.push_back(ReadRecord(stmt));
  }
  return out;
}

Result<ChainVerification> AuditLog::Verify() const {
  std::lock_guard<std::mutex> lock(mu_);
  SEXTANT_RETURN_IF_ERROR(CatchUpLocked());
  SEXTANT_ASSIGN_OR_RETURN(auto head, ReadHead(*db_));
  ChainVerification v;
  if (broken_) v = *broken_;
  v.records = head.first;
  v.head_seq = head.first;
  v.head_hash = head.second;
  v.checkpoints = checkpoints_;
  v.newest_checkpoint_seq = latest_checkpoint_ ? latest_checkpoint_->seq : 0;
  v.checkpoint_key_id = key_.key_id();
  return v;
}

Result<ChainVerification> AuditLog::VerifyFull() const {
  std::lock_guard<std::mutex> lock(mu_);
  SEXTANT_ASSIGN_OR_RETURN(ChainVerification v, VerifyDb(*db_));
  if (v.intact) {
    SEXTANT_ASSIGN_OR_RETURN(auto lines, ReadJournal(journal_path_));
    SqliteDb& dbref = *db_;
    SEXTANT_RETURN_IF_ERROR(CheckCheckpoints(
        lines, journal_path_, key_.public_key(), v.head_seq,
        [&dbref](int64_t seq) { return ReadHashAt(dbref, seq); }, &v));
  }
  if (!v.intact && !broken_) broken_ = v;
  return v;
}

Result<std::pair<int64_t, std::string>> AuditLog::Head() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ReadHead(*db_);
}

Result<std::optional<std::string>> AuditLog::HashAt(int64_t seq) const {
  std::lock_guard<std::mutex> lock(mu_);
  return ReadHashAt(*db_, seq);
}

Result<AuditCheckpoint> AuditLog::LatestCheckpoint() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!latest_checkpoint_) return Status::NotFound("no audit checkpoint yet");
  return *latest_checkpoint_;
}

Result<int> AuditLog::RecordInterrupted(
    const std::set<std::string>& rpcs,
    const std::function<std::string(const AuditRecord&)>& describe) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AuditRecord> pending;
  {
    SEXTANT_ASSIGN_OR_RETURN(
        auto st,
        db_->Prepare(std::string("SELECT ") + kColumns +
                     " FROM audit_log a WHERE a.outcome = 'allowed' AND a.seq > (SELECT value "
                     "FROM audit_meta WHERE key = 'outcomes_linked_after') AND NOT EXISTS "
                     "(SELECT 1 FROM audit_log b WHERE b.intent_seq = a.seq) ORDER BY a.seq"));
    while (true) {
      SEXTANT_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      AuditRecord r = ReadRecord(st);
      if (rpcs.count(r.entry.rpc)) pending.push_back(std::move(r));
    }
  }
  int n = 0;
  for (const auto& r : pending) {
    AuditEntry e;
    e.identity = r.entry.identity;
    e.role = r.entry.role;
    e.rpc = r.entry.rpc;
    e.target = r.entry.target;
    e.outcome = "interrupted";
    e.detail = describe ? describe(r) : "";
    e.intent_seq = r.seq;
    SEXTANT_RETURN_IF_ERROR(AppendLocked(e).status());
    ++n;
  }
  return n;
}

Status AuditLog::IntegrityCheck() const {
  std::lock_guard<std::mutex> lock(mu_);
  return CheckIntegrity(*db_);
}

Result<ChainVerification> VerifyAuditFile(const std::filesystem::path& dir) {
  const auto path = dir / "audit.db";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Status::NotFound("no audit log at " + path.string());
  }
  SEXTANT_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path));
  SEXTANT_RETURN_IF_ERROR(CheckIntegrity(*db));
  SEXTANT_ASSIGN_OR_RETURN(ChainVerification v, VerifyDb(*db));
  if (!v.intact) return v;
  const auto key_file = dir / kAuditKeyFile;
  if (!std::filesystem::exists(key_file, ec)) {
    if (v.head_seq == 0) return v;
    v.intact = false;
    v.reason = "no audit key at " + key_file.string() +
               ": the log's signed checkpoints cannot be checked, so its completeness cannot be "
               "proved";
    return v;
  }
  SEXTANT_ASSIGN_OR_RETURN(report::SigningKey key, report::SigningKey::Load(key_file));
  SEXTANT_ASSIGN_OR_RETURN(auto lines, ReadJournal(dir / kAuditJournalFile));
  SqliteDb& dbref = *db;
  SEXTANT_RETURN_IF_ERROR(CheckCheckpoints(
      lines, dir / kAuditJournalFile, key.public_key(), v.head_seq,
      [&dbref](int64_t seq) { return ReadHashAt(dbref, seq); }, &v));
  // The newest checkpoint kept in the database counts too (a journal cut back together with
  // the log still leaves it, unless it was rewritten as well).
  SEXTANT_ASSIGN_OR_RETURN(auto st, db->Prepare("SELECT seq, hash, time, key_id, signature FROM "
                                                "audit_checkpoint WHERE id = 1"));
  SEXTANT_ASSIGN_OR_RETURN(bool row, st.Step());
  if (row && v.intact) {
    AuditCheckpoint c{st.Int(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4)};
    if (Status s = audit::VerifyCheckpoint(c, key.public_key()); !s.ok()) {
      v.intact = false;
      v.reason = "the checkpoint in audit.db: " + s.message();
    } else if (c.seq > v.head_seq) {
      v.intact = false;
      v.first_broken_seq = v.head_seq + 1;
      v.reason = "truncated: the log ends at seq " + std::to_string(v.head_seq) +
                 " but the checkpoint in audit.db signs seq " + std::to_string(c.seq) +
                 ": records " + std::to_string(v.head_seq + 1) + ".." + std::to_string(c.seq) +
                 " are missing";
    } else if (c.seq > 0) {
      SEXTANT_ASSIGN_OR_RETURN(auto have, ReadHashAt(*db, c.seq));
      if (!have || *have != c.hash) {
        v.intact = false;
        v.first_broken_seq = c.seq;
        v.reason = "re-chained: record " + std::to_string(c.seq) +
                   " differs from the checkpoint in audit.db signed " + c.time;
      }
    }
  }
  return v;
}

}  // namespace sextant::agent
