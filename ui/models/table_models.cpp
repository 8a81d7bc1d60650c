#include "ui/models/table_models.h"

#include <QGuiApplication>
#include <QPalette>

namespace sextant::ui {

namespace {

QString Q(const std::string& s) { return QString::fromStdString(s); }

QString Short(const std::string& digest) {
  std::string d = digest;
  if (d.rfind("sha256:", 0) == 0) d = d.substr(7);
  return Q(d.substr(0, 12));
}

RenderedRow Row(const QString& key, int columns) { return RenderedRow::Sized(key, columns); }

QString ConnWord(console::ConnState s) { return QString::fromUtf8(console::ConnStateName(s)); }

QString Labels(const std::map<std::string, std::string>& labels) {
  QStringList out;
  for (const auto& [k, v] : labels) out << Q(k + "=" + v);
  return out.join(", ");
}

}  // namespace

QColor StateColor(const QString& word) {
  if (word == "pass" || word == "connected" || word == "done" || word == "ok" ||
      word == "unchanged") {
    return QColor(0x2e, 0xa0, 0x43, 120);
  }
  if (word == "fail" || word == "error" || word == "failed" || word == "refused" ||
      word == "breach" || word == "broken") {
    return QColor(0xd0, 0x30, 0x30, 140);
  }
  if (word == "warn" || word == "warning" || word == "stale" || word == "rolled-back") {
    return QColor(0xe0, 0xa0, 0x20, 140);
  }
  return QColor(0x80, 0x80, 0x80, 80);
}

// ---- Deployments ------------------------------------------------------------------------------

DeploymentsModel::DeploymentsModel(QObject* parent)
    : RowTableModel({"Target", "Deployment", "Replicas", "TTFT p50", "TTFT p99", "ITL p50",
                     "ITL p99", "Tokens/s", "Queue", "KV cache", "Prefix hits", "Model", "Spec",
                     "Sampled", "Target state"},
                    parent) {}

void DeploymentsModel::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  snapshot_ = snapshot;
  QVector<RenderedRow> rows;
  if (snapshot) {
    for (const auto& a : snapshot->fleet.accounts) {
      for (const auto& t : a.targets) {
        const QString state = ConnWord(t.status.state);
        for (const auto& d : t.deployments) {
          RenderedRow r = Row(Q(t.target.name + "/" + d.name), kColumnCount);
          r.state = state;
          r.display[kTarget] = Q(t.target.name);
          r.display[kDeployment] = Q(d.name);
          r.display[kReplicas] = QString("%1/%2").arg(d.replicas_ready).arg(d.replicas_desired);
          r.sort[kReplicas] = d.replicas_ready;
          if (d.replicas_ready < d.replicas_desired) r.background[kReplicas] = StateColor("warn");
          r.display[kTtftP50] = FormatMs(d.ttft_p50_ms);
          r.sort[kTtftP50] = d.ttft_p50_ms;
          r.display[kTtftP99] = FormatMs(d.ttft_p99_ms);
          r.sort[kTtftP99] = d.ttft_p99_ms;
          r.display[kItlP50] = FormatMs(d.itl_p50_ms);
          r.sort[kItlP50] = d.itl_p50_ms;
          r.display[kItlP99] = FormatMs(d.itl_p99_ms);
          r.sort[kItlP99] = d.itl_p99_ms;
          r.tooltip[kItlP50] = r.tooltip[kItlP99] =
              QString("inter-token latency: time between output tokens");
          r.display[kTokensPerSecond] = QString::number(d.tokens_per_s, 'f', 1);
          r.sort[kTokensPerSecond] = d.tokens_per_s;
          r.display[kQueue] = QString::number(d.queue_depth);
          r.sort[kQueue] = static_cast<qlonglong>(d.queue_depth);
          r.display[kKvCache] = FormatPercent(d.kv_cache_use);
          r.sort[kKvCache] = d.kv_cache_use;
          if (d.kv_cache_use >= 0.9) r.background[kKvCache] = StateColor("warn");
          r.display[kPrefixCache] =
              d.prefix_cache_hit >= 0 ? FormatPercent(d.prefix_cache_hit) : QString("—");
          r.sort[kPrefixCache] = d.prefix_cache_hit;
          r.tooltip[kPrefixCache] =
              QString("prompt tokens reused from the prefix cache, over the latest sample");
          r.display[kModel] = Short(d.model_sha256);
          r.tooltip[kModel] = Q(d.model_sha256);
          r.display[kSpec] = Short(d.spec_digest);
          r.tooltip[kSpec] = Q(d.spec_digest);
          r.display[kSampledAt] = FormatTimeMs(d.sampled_at);
          r.sort[kSampledAt] = static_cast<qlonglong>(d.sampled_at);
          r.display[kState] = Q(t.StatusText());
          r.background[kState] = StateColor(state);
          if (state != "connected") {
            r.foreground = QGuiApplication::palette().color(QPalette::Disabled, QPalette::Text);
          }
          rows.push_back(std::move(r));
        }
      }
    }
  }
  SetRows(std::move(rows));
}

std::optional<console::Deployment> DeploymentsModel::Deployment(const QString& key) const {
  if (!snapshot_) return std::nullopt;
  for (const auto& a : snapshot_->fleet.accounts) {
    for (const auto& t : a.targets) {
      for (const auto& d : t.deployments) {
        if (Q(t.target.name + "/" + d.name) == key) return d;
      }
    }
  }
  return std::nullopt;
}

// ---- Cost -------------------------------------------------------------------------------------

CostModel::CostModel(QObject* parent)
    : RowTableModel({"Key", "GPU-h provisioned", "GPU-h allocated", "Provisioned", "Allocated",
                     "Idle", "Tokens", "$ / M tokens"},
                    parent) {}

void CostModel::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  snapshot_ = snapshot;
  Render();
}

void CostModel::SetGroupBy(console::GroupBy by) {
  by_ = by;
  Render();
}

void CostModel::Render() {
  QVector<RenderedRow> rows;
  if (snapshot_) {
    auto it = snapshot_->cost.find(by_);
    if (it != snapshot_->cost.end()) {
      auto add = [&rows](const console::CostLine& l, bool total) {
        RenderedRow r = Row(Q(l.key), kColumnCount);
        r.bold = total;
        r.display[kKey] = Q(l.key);
        r.display[kGpuHoursProvisioned] = QString::number(l.gpu_hours_provisioned, 'f', 2);
        r.sort[kGpuHoursProvisioned] = l.gpu_hours_provisioned;
        r.display[kGpuHoursAllocated] = QString::number(l.gpu_hours_allocated, 'f', 2);
        r.sort[kGpuHoursAllocated] = l.gpu_hours_allocated;
        r.display[kProvisionedUsd] = FormatUsd(l.provisioned_usd);
        r.sort[kProvisionedUsd] = l.provisioned_usd;
        r.display[kAllocatedUsd] = FormatUsd(l.allocated_usd);
        r.sort[kAllocatedUsd] = l.allocated_usd;
        r.display[kIdleUsd] = FormatUsd(l.idle_usd);
        r.sort[kIdleUsd] = l.idle_usd;
        r.display[kTokens] = QString::number(l.generated_tokens);
        r.sort[kTokens] = static_cast<qlonglong>(l.generated_tokens);
        if (l.usd_per_million_tokens) {
          r.display[kUsdPerMillionTokens] = FormatUsd(*l.usd_per_million_tokens);
          r.sort[kUsdPerMillionTokens] = *l.usd_per_million_tokens;
        } else {
          r.display[kUsdPerMillionTokens] = QString("–");
          r.sort[kUsdPerMillionTokens] = -1.0;
        }
        rows.push_back(std::move(r));
      };
      for (const auto& l : it->second.report.lines) add(l, false);
      add(it->second.report.total, true);
    }
  }
  SetRows(std::move(rows));
}

QString CostModel::ToCsv() const {
  auto quote = [](QString s) {
    if (s.contains(',') || s.contains('"') || s.contains('\n')) {
      s.replace("\"", "\"\"");
      return "\"" + s + "\"";
    }
    return s;
  };
  QString out =
      "key,gpu_hours_provisioned,gpu_hours_allocated,provisioned_usd,allocated_usd,idle_usd,"
      "generated_tokens,usd_per_million_tokens\n";
  if (!snapshot_) return out;
  auto it = snapshot_->cost.find(by_);
  if (it == snapshot_->cost.end()) return out;
  auto line = [&](const console::CostLine& l) {
    out += quote(Q(l.key)) + "," + QString::number(l.gpu_hours_provisioned, 'f', 4) + "," +
           QString::number(l.gpu_hours_allocated, 'f', 4) + "," +
           QString::number(l.provisioned_usd, 'f', 4) + "," +
           QString::number(l.allocated_usd, 'f', 4) + "," + QString::number(l.idle_usd, 'f', 4) +
           "," + QString::number(l.generated_tokens) + "," +
           (l.usd_per_million_tokens ? QString::number(*l.usd_per_million_tokens, 'f', 4)
                                     : QString()) +
           "\n";
  };
  for (const auto& l : it->second.report.lines) line(l);
  line(it->second.report.total);
  return out;
}

// ---- Compliance -------------------------------------------------------------------------------

ComplianceMatrixModel::ComplianceMatrixModel(QObject* parent) : RowTableModel({"Target"}, parent) {}

void ComplianceMatrixModel::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  snapshot_ = snapshot;
  QStringList headers{"Target"};
  QStringList tips{"Target"};
  std::map<std::string, int> column_of;  // "pack/rule" -> column
  QVector<RenderedRow> rows;
  finding_index_.clear();
  if (snapshot) {
    for (const auto& p : snapshot->packs) {
      for (const auto& r : p.rules) {
        column_of[p.name + "/" + r.id] = static_cast<int>(headers.size());
        headers << Q(r.id);
        tips << Q(p.name + " · " + r.id + ": " + r.title + " (" +
                  std::string(console::SeverityName(r.severity)) + ")");
      }
    }
    std::map<std::string, int> row_of;
    for (const auto& t : snapshot->targets) {
      row_of[t.name] = static_cast<int>(rows.size());
      RenderedRow row = Row(Q(t.name), static_cast<int>(headers.size()));
      row.display[0] = Q(t.name);
      rows.push_back(std::move(row));
      finding_index_.push_back(QVector<int>(headers.size() - 1, -1));
    }
    for (size_t i = 0; i < snapshot->findings.size(); ++i) {
      const auto& f = snapshot->findings[i];
      auto r = row_of.find(f.target);
      auto c = column_of.find(f.pack + "/" + f.rule_id);
      if (r == row_of.end() || c == column_of.end()) continue;
      const QString verdict = Q(std::string(console::VerdictName(f.verdict)));
      RenderedRow& row = rows[r->second];
      row.display[c->second] = verdict;
      row.sort[c->second] = verdict;
      row.tooltip[c->second] = Q(f.message);
      row.background[c->second] = StateColor(verdict);
      finding_index_[r->second][c->second - 1] = static_cast<int>(i);
    }
  }
  SetHeaderToolTips(tips);
  SetHeadersAndRows(headers, std::move(rows));
}

QVariant ComplianceMatrixModel::data(const QModelIndex& index, int role) const {
  if (role == StateRole && index.isValid() && index.column() > 0) {
    return RowTableModel::data(index, Qt::DisplayRole);
  }
  if (role == FindingRole) {
    if (!checkIndex(index, CheckIndexOption::IndexIsValid) || index.column() == 0) return -1;
    return finding_index_[index.row()][index.column() - 1];
  }
  return RowTableModel::data(index, role);
}

const console::Finding* ComplianceMatrixModel::FindingAt(const QModelIndex& index) const {
  if (!snapshot_ || !index.isValid()) return nullptr;
  const int i = data(index, FindingRole).toInt();
  if (i < 0 || static_cast<size_t>(i) >= snapshot_->findings.size()) return nullptr;
  return &snapshot_->findings[static_cast<size_t>(i)];
}

// ---- Audit ------------------------------------------------------------------------------------

AuditModel::AuditModel(QObject* parent)
    : RowTableModel(
          {"Target", "Seq", "Time", "Identity", "Role", "RPC", "Object", "Outcome", "Hash"},
          parent) {}

void AuditModel::SetFetch(const AuditFetch& fetch) {
  fetches_[fetch.target] = fetch;
  Render();
}

void AuditModel::RemoveTarget(const std::string& target) {
  fetches_.erase(target);
  Render();
}

void AuditModel::Render() {
  QVector<RenderedRow> rows;
  for (const auto& [target, fetch] : fetches_) {
    for (const auto& a : fetch.records) {
      RenderedRow r = Row(Q(target) + "#" + QString::number(a.seq), kColumnCount);
      r.display[kTarget] = Q(target);
      r.display[kSeq] = static_cast<qlonglong>(a.seq);
      r.sort[kSeq] = static_cast<qlonglong>(a.seq);
      r.display[kTime] = Q(a.time);
      r.display[kIdentity] = Q(a.identity);
      r.display[kRole] = Q(a.role);
      r.display[kRpc] = Q(a.rpc);
      r.display[kObject] = Q(a.object);
      r.display[kOutcome] = Q(a.outcome);
      r.state = Q(a.outcome);
      if (a.outcome == "denied" || a.outcome.rfind("error", 0) == 0) {
        r.background[kOutcome] = StateColor("fail");
      }
      r.display[kHash] = Q(a.hash.substr(0, 12));
      r.tooltip[kHash] = Q(a.hash);
      if (fetch.first_broken_seq > 0 && a.seq >= fetch.first_broken_seq) {
        r.foreground = QColor(0xd0, 0x30, 0x30);
      }
      rows.push_back(std::move(r));
    }
  }
  SetRows(std::move(rows));
}

AuditChainModel::AuditChainModel(QObject* parent)
    : RowTableModel({"Target", "Chain", "Head", "Scope", "Records"}, parent) {}

void AuditChainModel::SetFetch(const AuditFetch& fetch) {
  entries_[fetch.target] = Entry{fetch, {}};
  Render();
}

void AuditChainModel::SetError(const std::string& target, const std::string& error) {
  entries_[target] = Entry{std::nullopt, error};
  Render();
}

void AuditChainModel::Render() {
  QVector<RenderedRow> rows;
  for (const auto& [target, e] : entries_) {
    RenderedRow r = Row(Q(target), kColumnCount);
    r.display[kTarget] = Q(target);
    if (e.fetch) {
      const AuditFetch& f = *e.fetch;
      QString chain;
      if (f.first_broken_seq > 0) {
        chain = QString("broken at %1: %2").arg(f.first_broken_seq).arg(Q(f.broken_reason));
        r.state = "broken";
      } else if (f.chain_verified) {
        chain = "verified";
        r.state = "pass";
      } else {
        chain = "not verified";
        r.state = "unknown";
      }
      r.display[kChain] = chain;
      r.background[kChain] = StateColor(r.state);
      r.display[kHeadSeq] = static_cast<qlonglong>(f.head_seq);
      r.sort[kHeadSeq] = static_cast<qlonglong>(f.head_seq);
      r.display[kScope] = Q(f.scope);
      r.display[kRecords] = static_cast<qlonglong>(f.records.size());
      r.sort[kRecords] = static_cast<qlonglong>(f.records.size());
    } else {
      r.state = "error";
      r.display[kChain] = "unreachable: " + Q(e.error);
      r.background[kChain] = StateColor("error");
    }
    rows.push_back(std::move(r));
  }
  SetRows(std::move(rows));
}

// ---- Targets and accounts ---------------------------------------------------------------------

TargetsModel::TargetsModel(QObject* parent)
    : RowTableModel({"Name", "Endpoint", "Account", "Labels", "State", "Last seen", "Identity"},
                    parent) {}

void TargetsModel::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  QVector<RenderedRow> rows;
  if (snapshot) {
    std::map<std::string, const console::TargetView*> views;
    for (const auto& a : snapshot->fleet.accounts) {
      for (const auto& t : a.targets) views[t.target.name] = &t;
    }
    for (const auto& t : snapshot->targets) {
      RenderedRow r = Row(Q(t.name), kColumnCount);
      r.display[kName] = Q(t.name);
      r.display[kEndpoint] = Q(t.endpoint);
      r.display[kAccount] = Q(t.account);
      r.display[kLabels] = Labels(t.labels);
      auto v = views.find(t.name);
      if (v != views.end()) {
        const auto& st = v->second->status;
        r.state = ConnWord(st.state);
        r.display[kState] = Q(v->second->StatusText());
        r.background[kState] = StateColor(r.state);
        r.tooltip[kState] = Q(st.error);
        r.display[kLastSeen] = FormatTimeMs(st.last_seen);
        r.sort[kLastSeen] = static_cast<qlonglong>(st.last_seen);
        r.display[kIdentity] =
            st.identity.empty() ? QString() : Q(st.identity + " (" + st.role + ")");
      }
      rows.push_back(std::move(r));
    }
  }
  SetRows(std::move(rows));
}

AccountsModel::AccountsModel(QObject* parent)
    : RowTableModel({"Name", "Provider", "Account id", "Regions", "Targets"}, parent) {}

void AccountsModel::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  QVector<RenderedRow> rows;
  if (snapshot) {
    for (const auto& a : snapshot->accounts) {
      RenderedRow r = Row(Q(a.name), kColumnCount);
      r.display[kName] = Q(a.name);
      r.display[kProvider] = Q(a.provider);
      r.display[kAccountId] = Q(a.account_id);
      QStringList regions;
      for (const auto& g : a.regions) regions << Q(g);
      r.display[kRegions] = regions.join(", ");
      int n = 0;
      for (const auto& t : snapshot->targets) n += t.account == a.name ? 1 : 0;
      r.display[kTargets] = n;
      r.sort[kTargets] = n;
      rows.push_back(std::move(r));
    }
  }
  SetRows(std::move(rows));
}

}  // namespace sextant::ui
