#include "ui/tui/console_snapshot.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "app/common/fact_keys.h"
#include "engine/base/time.h"

namespace sextant::tui {
namespace {

const std::string* FindFact(const std::vector<console::Fact>& facts, const std::string& target,
                            std::string_view key, console::TimeMs* observed = nullptr) {
  for (const auto& f : facts) {
    if (f.target == target && f.key == key) {
      if (observed) *observed = f.observed_at;
      return &f.value;
    }
  }
  return nullptr;
}

}  // namespace

std::string_view AlertSeverityName(AlertSeverity s) {
  return s == AlertSeverity::kCritical ? "critical" : "warning";
}

std::vector<Alert> ComputeAlerts(const ConsoleSnapshot& snap,
                                 const std::vector<console::Finding>& failed_findings,
                                 int64_t cert_warn_ms, console::TimeMs now,
                                 std::map<std::string, console::TimeMs>* first_seen) {
  std::vector<Alert> out;
  auto add = [&](Alert a) {
    a.key = a.kind + "|" + a.subject + "|" + (a.kind == "compliance" ? a.message : "");
    if (first_seen) {
      auto [it, inserted] = first_seen->emplace(a.key, a.since > 0 ? a.since : now);
      if (a.since <= 0) a.since = it->second;
      (void)inserted;
    }
    out.push_back(std::move(a));
  };
  for (const auto& t : snap.targets) {
    const auto& st = t.status;
    if (st.state == console::ConnState::kError || st.state == console::ConnState::kUnknown) {
      Alert a;
      a.severity = AlertSeverity::kCritical;
      a.kind = "unreachable";
      a.subject = t.target.name;
      a.target = t.target.name;
      a.message = st.state == console::ConnState::kError ? st.error : "never connected";
      if (st.last_seen > 0) a.message += " (last seen " + FormatClockTime(st.last_seen, now) + ")";
      a.since = st.since > 0 ? st.since : 0;
      add(std::move(a));
    } else if (st.state == console::ConnState::kStale) {
      Alert a;
      a.severity = AlertSeverity::kWarning;
      a.kind = "stale";
      a.subject = t.target.name;
      a.target = t.target.name;
      a.message =
          "no report since " + FormatClockTime(st.last_seen > 0 ? st.last_seen : st.since, now);
      if (!st.error.empty()) a.message += ": " + st.error;
      a.since = st.since;
      add(std::move(a));
    }
    // Replicas are only judged on targets whose figures are current.
    if (st.state == console::ConnState::kConnected) {
      for (const auto& d : t.deployments) {
        if (d.replicas_desired > 0 && d.replicas_ready < d.replicas_desired) {
          Alert a;
          a.severity = d.replicas_ready == 0 ? AlertSeverity::kCritical : AlertSeverity::kWarning;
          a.kind = "replicas";
          a.subject = t.target.name + "/" + d.name;
          a.target = t.target.name;
          a.message = std::to_string(d.replicas_ready) + "/" + std::to_string(d.replicas_desired) +
                      " replicas ready";
          add(std::move(a));
        }
      }
    }
    // Certificates: the agent's server certificate expiry, when its facts carry it.
    for (const auto& f : snap.facts) {
      if (f.target != t.target.name) continue;
      if (f.key.rfind(facts::kTlsCertExpiresAt, 0) != 0 &&
          f.key.rfind(facts::kTlsCertNotAfterPrefix, 0) != 0) {
        continue;
      }
      auto when = console::ParseTimeFact(f.value);
      if (!when.ok()) continue;
      const int64_t left = *when - now;
      if (left >= cert_warn_ms) continue;
      Alert a;
      a.severity = left <= 0 ? AlertSeverity::kCritical : AlertSeverity::kWarning;
      a.kind = "certificate";
      a.subject = t.target.name;
      a.target = t.target.name;
      a.message = left <= 0 ? "certificate expired " + f.value
                            : "certificate expires " + f.value + " (" +
                                  std::to_string(left / 86'400'000) + " days left)";
      a.since = f.observed_at;
      add(std::move(a));
    }
  }
  for (const auto& b : snap.cost.budgets) {
    if (b.state == console::BudgetState::kOk) continue;
    Alert a;
    a.severity = b.state == console::BudgetState::kBreach ? AlertSeverity::kCritical
                                                          : AlertSeverity::kWarning;
    a.kind = "budget";
    a.subject = b.budget.label;
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s: $%.2f of $%.2f (%.0f%%) over %d days",
                  b.state == console::BudgetState::kBreach ? "breach" : "warning", b.spent_usd,
                  b.budget.amount_usd, b.ratio * 100, b.budget.window_days);
    a.message = buf;
    add(std::move(a));
  }
  for (const auto& f : failed_findings) {
    Alert a;
    a.severity =
        f.severity >= console::Severity::kHigh ? AlertSeverity::kCritical : AlertSeverity::kWarning;
    a.kind = "compliance";
    a.subject = f.target;
    a.target = f.target;
    a.message = f.rule_id + " " + f.message;
    for (const auto& e : f.evidence) {
      if (e.observed_at > 0 && (a.since == 0 || e.observed_at < a.since)) a.since = e.observed_at;
    }
    add(std::move(a));
  }
  if (first_seen) {
    std::set<std::string> live;
    for (const auto& a : out) live.insert(a.key);
    for (auto it = first_seen->begin(); it != first_seen->end();) {
      it = live.count(it->first) ? std::next(it) : first_seen->erase(it);
    }
  }
  // Critical first; within a severity, what stops the fleet from being seen or serving comes
  // before budgets and policy; then the oldest first.
  auto rank = [](const std::string& kind) {
    static const char* order[] = {"unreachable", "stale", "replicas", "certificate", "budget"};
    for (int i = 0; i < 5; ++i) {
      if (kind == order[i]) return i;
    }
    return 5;
  };
  std::stable_sort(out.begin(), out.end(), [&](const Alert& x, const Alert& y) {
    if (x.severity != y.severity) return x.severity < y.severity;
    if (rank(x.kind) != rank(y.kind)) return rank(x.kind) < rank(y.kind);
    if (x.since != y.since) return x.since < y.since;
    return x.key < y.key;
  });
  return out;
}

ConsoleSnapshot LoadSnapshot(const SnapshotSources& src, console::TimeMs now, bool heavy,
                             const ConsoleSnapshot* previous) {
  ConsoleSnapshot s;
  s.loaded_at = now;
  if (previous != nullptr) {
    s.alert_first_seen = previous->alert_first_seen;
    if (!heavy) {
      s.cost = previous->cost;
      s.failed_findings = previous->failed_findings;
    }
  }
  auto fleet = console::LoadFleet(*src.store, now, src.stale_after_ms);
  if (!fleet.ok()) {
    s.error = "reading the console store: " + fleet.status().message();
    if (previous != nullptr) {
      // Keep showing what was last read; the header says the read failed.
      std::string err = s.error;
      s = *previous;
      s.error = err;
      s.loaded_at = now;
    }
    return s;
  }
  s.fleet = std::move(fleet).value();
  for (const auto& acc : s.fleet.accounts) {
    for (const auto& t : acc.targets) s.targets.push_back(t);
  }
  std::sort(s.targets.begin(), s.targets.end(),
            [](const auto& a, const auto& b) { return a.target.name < b.target.name; });
  auto facts = src.store->facts().List();
  if (facts.ok()) s.facts = std::move(facts).value();
  for (const auto& t : s.targets) {
    if (t.status.state == console::ConnState::kConnected) ++s.targets_connected;
    s.last_update = std::max(s.last_update, t.status.last_seen);
    for (const auto& d : t.deployments) s.last_update = std::max(s.last_update, d.sampled_at);
    if (s.identity.empty() && !t.status.identity.empty()) {
      s.identity = t.status.identity;
      s.role = t.status.role;
    }
    if (s.identity.empty()) {
      if (const auto* id = FindFact(s.facts, t.target.name, facts::kConsoleIdentity))
        s.identity = *id;
      if (const auto* r = FindFact(s.facts, t.target.name, facts::kConsoleRole)) s.role = *r;
    }
    AuditState a;
    a.target = t.target.name;
    const auto* chain = FindFact(s.facts, t.target.name, facts::kAuditChainVerified);
    a.chain = chain == nullptr ? "unknown" : *chain == "true" ? "intact" : "BROKEN";
    if (const auto* r = FindFact(s.facts, t.target.name, facts::kAuditRecords)) {
      a.records = std::atoll(r->c_str());
    }
    if (const auto* h = FindFact(s.facts, t.target.name, facts::kAuditHeadHash)) a.head_hash = *h;
    if (const auto* ht = FindFact(s.facts, t.target.name, facts::kAuditHeadTime)) {
      auto when = console::ParseTimeFact(*ht);
      if (when.ok()) a.verified_at = *when;
    }
    if (const auto* p = FindFact(s.facts, t.target.name, facts::kPolicyDigest))
      a.policy_digest = *p;
    if (const auto* e = FindFact(s.facts, t.target.name, facts::kEgressPayloadBytesToVendor)) {
      a.payload_bytes_to_vendor = *e;
    }
    s.audit.push_back(std::move(a));
  }

  if (heavy) {
    // Cost: the last week, by deployment and by target; budgets over their own windows.
    if (src.catalog == nullptr) {
      s.cost.available = false;
      s.cost.note = src.catalog_error.empty() ? "no price catalog" : src.catalog_error;
    } else {
      auto targets = src.store->targets().List();
      auto gpus = src.store->telemetry().ListGpus();
      auto budgets = src.store->budgets().List();
      int64_t window = src.cost_window_ms;
      if (budgets.ok()) {
        for (const auto& b : *budgets)
          window = std::max<int64_t>(window, b.window_days * 86'400'000LL);
      }
      auto usage = src.store->telemetry().HourlyUsage(now - window);
      if (targets.ok() && gpus.ok() && usage.ok() && budgets.ok()) {
        auto infos = console::TargetsFromStore(*targets, s.facts, *gpus);
        std::vector<console::HourUsage> recent;
        for (const auto& u : *usage) {
          if (u.hour >= now - src.cost_window_ms) recent.push_back(u);
        }
        s.cost.available = true;
        s.cost.by_deployment =
            console::ComputeCost(recent, infos, *src.catalog, console::GroupBy::kDeployment);
        s.cost.by_target =
            console::ComputeCost(recent, infos, *src.catalog, console::GroupBy::kTarget);
        s.cost.budgets = console::EvaluateBudgets(*budgets, *usage, infos, *src.catalog, now);
        s.cost.note.clear();
        for (const auto& u : s.cost.by_target.unpriced) {
          s.cost.note += (s.cost.note.empty() ? "unpriced: " : "; ") + u;
        }
      } else {
        s.cost.available = false;
        s.cost.note = "reading usage: " + (!targets.ok() ? targets.status().message()
                                           : !gpus.ok()  ? gpus.status().message()
                                           : !usage.ok() ? usage.status().message()
                                                         : budgets.status().message());
      }
    }
    if (src.packs != nullptr) {
      console::EvaluationInput in;
      in.now = now;
      for (const auto& t : s.targets) in.targets.push_back(t.target.name);
      in.facts = s.facts;
      auto reports = console::LoadValidationRecords(*src.store);
      if (reports.ok()) in.reports = std::move(reports).value();
      for (const auto& p : *src.packs) {
        for (auto& f : console::Evaluate(p, in)) {
          if (f.verdict == console::Verdict::kFail) s.failed_findings.push_back(std::move(f));
        }
      }
    }
  }
  s.alerts = ComputeAlerts(s, s.failed_findings, src.cert_warn_ms, now, &s.alert_first_seen);
  return s;
}

SnapshotPoller::SnapshotPoller(Loader loader, std::chrono::milliseconds interval, int heavy_every)
    : loader_(std::move(loader)), interval_(interval), heavy_every_(std::max(1, heavy_every)) {
  thread_ = std::thread([this] { Run(); });
}

SnapshotPoller::~SnapshotPoller() { Stop(); }

void SnapshotPoller::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SnapshotPoller::Poke() {
  {
    std::lock_guard<std::mutex> l(mu_);
    poked_ = true;
  }
  cv_.notify_all();
}

std::shared_ptr<const ConsoleSnapshot> SnapshotPoller::Latest() {
  std::lock_guard<std::mutex> l(mu_);
  return latest_;
}

void SnapshotPoller::Run() {
  uint64_t n = 0;
  for (;;) {
    std::shared_ptr<const ConsoleSnapshot> prev;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
      prev = latest_;
    }
    const bool heavy = n % static_cast<uint64_t>(heavy_every_) == 0;
    auto next = std::make_shared<const ConsoleSnapshot>(loader_(heavy, prev.get()));
    ++n;
    std::unique_lock<std::mutex> l(mu_);
    latest_ = std::move(next);
    generation_.fetch_add(1);
    cv_.wait_for(l, interval_, [this] { return stop_ || poked_; });
    poked_ = false;
  }
}

}  // namespace sextant::tui
