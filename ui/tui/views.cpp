#include "ui/tui/views.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <numeric>

namespace sextant::tui {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Money(double v) { return "$" + Fixed(v, 2); }

std::string ShortDigest(const std::string& d) {
  std::string s = d;
  if (s.rfind("sha256:", 0) == 0) s = s.substr(7);
  return s.size() > 12 ? s.substr(0, 12) : (s.empty() ? "-" : s);
}

Tone StatusTone(const console::TargetStatus& s) {
  switch (s.state) {
    case console::ConnState::kConnected:
      return Tone::kGood;
    case console::ConnState::kStale:
      return Tone::kWarn;
    default:
      return Tone::kBad;
  }
}

std::string StatusWord(const console::TargetView& t, console::TimeMs now) {
  switch (t.status.state) {
    case console::ConnState::kConnected:
      return "connected";
    case console::ConnState::kStale:
      return "stale " + FormatAge(t.status.since, now);
    case console::ConnState::kError:
      return "unreachable " + FormatAge(t.status.since, now);
    case console::ConnState::kUnknown:
      break;
  }
  return "never connected";
}

const console::TargetView* FindTarget(const ConsoleSnapshot& s, const std::string& name) {
  for (const auto& t : s.targets) {
    if (t.target.name == name) return &t;
  }
  return nullptr;
}

Tone DeploymentTone(const console::Deployment& d) {
  if (d.replicas_desired > 0 && d.replicas_ready == 0) return Tone::kBad;
  if (d.replicas_ready < d.replicas_desired) return Tone::kWarn;
  return Tone::kNormal;
}

Row DeploymentRow(const console::TargetView& t, const console::Deployment& d, bool with_target) {
  Row r;
  if (with_target) r.cells.push_back(t.target.name);
  r.cells.push_back(d.name);
  r.cells.push_back(std::to_string(d.replicas_ready) + "/" + std::to_string(d.replicas_desired));
  r.cells.push_back(d.sampled_at > 0 ? Fixed(d.ttft_p50_ms, 1) : "-");
  r.cells.push_back(d.sampled_at > 0 ? Fixed(d.ttft_p99_ms, 1) : "-");
  r.cells.push_back(d.sampled_at > 0 ? Fixed(d.tokens_per_s, 1) : "-");
  r.cells.push_back(d.sampled_at > 0 ? std::to_string(d.queue_depth) : "-");
  r.cells.push_back(ShortDigest(d.model_sha256));
  r.tone = t.status.state == console::ConnState::kConnected ? DeploymentTone(d) : Tone::kDim;
  r.drillable = true;
  r.drill = ViewId::kDeployment;
  r.drill_context = t.target.name + "/" + d.name;
  r.target = t.target.name;
  r.deployment = d.name;
  r.replicas_desired = d.replicas_desired;
  return r;
}

std::vector<Column> DeploymentColumns(bool with_target) {
  std::vector<Column> c;
  if (with_target) c.push_back({"TARGET"});
  for (Column col : std::vector<Column>{{"DEPLOYMENT"},
                                        {"READY", true},
                                        {"P50 MS", true},
                                        {"P99 MS", true},
                                        {"TOK/S", true},
                                        {"QUEUE", true},
                                        {"MODEL", false, true}}) {
    c.push_back(col);
  }
  return c;
}

ViewTable Fleet(const ConsoleSnapshot& s) {
  ViewTable v;
  v.title = "fleet";
  v.columns = {{"TARGET"},     {"STATUS"},      {"REGION"},
               {"GPUS", true}, {"UTIL%", true}, {"MEM GIB", true},
               {"DEPL", true}, {"SEEN", true},  {"GPU MODEL", false, true}};
  for (const auto& t : s.targets) {
    int gpus = 0;
    double util = 0;
    int64_t used = 0, total = 0;
    std::string model;
    for (const auto& n : t.nodes) {
      for (const auto& g : n.gpus) {
        ++gpus;
        util += g.utilization;
        used += g.memory_used_bytes;
        total += g.memory_total_bytes;
        if (model.empty()) model = console::CatalogGpuModel(g.model);
      }
    }
    Row r;
    std::string region = t.provider.empty() ? t.region : t.provider + "/" + t.region;
    if (region.empty() || region == "/") region = "-";
    r.cells = {t.target.name,
               StatusWord(t, s.loaded_at),
               region,
               std::to_string(gpus),
               gpus ? Fixed(util / gpus * 100, 0) : "-",
               total ? Fixed(used / kGiB, 0) + "/" + Fixed(total / kGiB, 0) : "-",
               std::to_string(t.deployments.size()),
               FormatAge(t.status.last_seen, s.loaded_at),
               model.empty() ? (gpus ? "-" : "cpu only") : model};
    r.tone = StatusTone(t.status);
    r.drillable = true;
    r.drill = ViewId::kTarget;
    r.drill_context = t.target.name;
    v.rows.push_back(std::move(r));
  }
  if (s.targets.empty()) v.note = "no targets: add one with `sextant targets add`";
  return v;
}

ViewTable Deploy(const ConsoleSnapshot& s) {
  ViewTable v;
  v.title = "deploy";
  v.columns = DeploymentColumns(true);
  for (const auto& t : s.targets) {
    for (const auto& d : t.deployments) v.rows.push_back(DeploymentRow(t, d, true));
  }
  if (v.rows.empty()) v.note = "no deployments reported";
  return v;
}

ViewTable Alerts(const ConsoleSnapshot& s) {
  ViewTable v;
  v.title = "alerts";
  v.columns = {{"SEVERITY"}, {"KIND"}, {"SUBJECT"}, {"SINCE", true}, {"WHAT", false, true}};
  for (const auto& a : s.alerts) {
    Row r;
    r.cells = {std::string(AlertSeverityName(a.severity)), a.kind, a.subject,
               a.since > 0 ? FormatClockTime(a.since, s.loaded_at) : "-", a.message};
    r.tone = a.severity == AlertSeverity::kCritical ? Tone::kBad : Tone::kWarn;
    if (!a.target.empty() && FindTarget(s, a.target) != nullptr) {
      r.drillable = true;
      r.drill = ViewId::kTarget;
      r.drill_context = a.target;
    }
    v.rows.push_back(std::move(r));
  }
  if (v.rows.empty()) v.note = "no alerts";
  return v;
}

ViewTable Audit(const ConsoleSnapshot& s) {
  ViewTable v;
  v.title = "audit";
  v.columns = {{"TARGET"},
               {"CHAIN"},
               {"RECORDS", true},
               {"VERIFIED", true},
               {"PAYLOAD->VENDOR", true},
               {"HEAD", false, true}};
  for (const auto& a : s.audit) {
    Row r;
    r.cells = {a.target,
               a.chain,
               a.records >= 0 ? std::to_string(a.records) : "-",
               a.verified_at > 0 ? FormatClockTime(a.verified_at, s.loaded_at) : "-",
               a.payload_bytes_to_vendor.empty() ? "-" : a.payload_bytes_to_vendor + " B",
               a.head_hash.empty() ? "-" : a.head_hash};
    r.tone = a.chain == "intact" ? Tone::kGood : a.chain == "BROKEN" ? Tone::kBad : Tone::kDim;
    r.drillable = FindTarget(s, a.target) != nullptr;
    r.drill = ViewId::kTarget;
    r.drill_context = a.target;
    v.rows.push_back(std::move(r));
  }
  v.note = "chain state as each agent last verified it (sextant-agent audit verify on the host)";
  return v;
}

ViewTable Cost(const ConsoleSnapshot& s) {
  ViewTable v;
  v.title = "cost";
  v.columns = {{"WHAT"},       {"GPU-H", true}, {"PROVISIONED", true}, {"ALLOCATED", true},
               {"IDLE", true}, {"$/MTOK", true}};
  if (!s.cost.available) {
    v.note = "cost not available: " + s.cost.note;
    return v;
  }
  auto add = [&](const console::CostLine& l, const std::string& prefix, Tone tone) {
    Row r;
    r.cells = {prefix + l.key,
               Fixed(l.gpu_hours_provisioned, 2),
               Money(l.provisioned_usd),
               Money(l.allocated_usd),
               Money(l.idle_usd),
               l.usd_per_million_tokens ? Money(*l.usd_per_million_tokens) : "-"};
    r.tone = tone;
    v.rows.push_back(std::move(r));
  };
  for (const auto& l : s.cost.by_target.lines) add(l, "target ", Tone::kNormal);
  for (const auto& l : s.cost.by_deployment.lines) add(l, "deploy ", Tone::kNormal);
  add(s.cost.by_target.total, "", Tone::kDim);
  for (const auto& b : s.cost.budgets) {
    Row r;
    r.cells = {"budget " + b.budget.label + " (" + std::to_string(b.budget.window_days) + "d)",
               "-",
               Money(b.spent_usd),
               Money(b.budget.amount_usd),
               Fixed(b.ratio * 100, 0) + "%",
               std::string(console::BudgetStateName(b.state))};
    r.tone = b.state == console::BudgetState::kBreach    ? Tone::kBad
             : b.state == console::BudgetState::kWarning ? Tone::kWarn
                                                         : Tone::kGood;
    v.rows.push_back(std::move(r));
  }
  v.note = "last 7 days" + (s.cost.note.empty() ? std::string() : "; " + s.cost.note);
  return v;
}

ViewTable TargetDetail(const ConsoleSnapshot& s, const std::string& name) {
  ViewTable v;
  v.title = "target " + name;
  v.columns = {{"KIND"},           {"NAME"},          {"UTIL%/READY", true},  {"MEM GIB", true},
               {"TEMP/P99", true}, {"W/TOK/S", true}, {"DETAIL", false, true}};
  const auto* t = FindTarget(s, name);
  if (t == nullptr) {
    v.note = "target " + name + " is no longer in the store";
    return v;
  }
  std::string where = t->provider + "/" + t->region;
  if (!t->instance_type.empty()) where += " " + t->instance_type;
  v.note = t->StatusText() + "; " + t->target.endpoint + "; " + where + "; last seen " +
           FormatClockTime(t->status.last_seen, s.loaded_at);
  for (const auto& n : t->nodes) {
    for (const auto& g : n.gpus) {
      Row r;
      r.cells = {"gpu",
                 n.name + "#" + std::to_string(g.index),
                 g.sampled_at ? Fixed(g.utilization * 100, 0) : "-",
                 Fixed(g.memory_used_bytes / kGiB, 1) + "/" + Fixed(g.memory_total_bytes / kGiB, 0),
                 g.sampled_at ? Fixed(g.temperature_c, 0) + "C" : "-",
                 g.sampled_at ? Fixed(g.power_w, 0) : "-",
                 g.model};
      r.tone = t->status.state == console::ConnState::kConnected ? Tone::kNormal : Tone::kDim;
      v.rows.push_back(std::move(r));
    }
  }
  for (const auto& d : t->deployments) {
    Row dr = DeploymentRow(*t, d, false);
    Row r = dr;
    r.cells = {"deployment", d.name,      dr.cells[1],           "-",
               dr.cells[3],  dr.cells[4], "model " + dr.cells[6]};
    v.rows.push_back(std::move(r));
  }
  return v;
}

ViewTable DeploymentDetail(const ConsoleSnapshot& s, const std::string& context) {
  ViewTable v;
  v.title = "deployment " + context;
  v.columns = {{"FIELD"}, {"VALUE", false, true}};
  const auto slash = context.find('/');
  const std::string target = context.substr(0, slash);
  const std::string name = slash == std::string::npos ? "" : context.substr(slash + 1);
  const auto* t = FindTarget(s, target);
  const console::Deployment* d = nullptr;
  if (t != nullptr) {
    for (const auto& x : t->deployments) {
      if (x.name == name) d = &x;
    }
  }
  if (d == nullptr) {
    v.note = "deployment " + context + " is no longer reported";
    return v;
  }
  auto add = [&](std::string k, std::string val, Tone tone = Tone::kNormal) {
    Row r;
    r.cells = {std::move(k), std::move(val)};
    r.tone = tone;
    r.target = target;
    r.deployment = name;
    r.replicas_desired = d->replicas_desired;
    v.rows.push_back(std::move(r));
  };
  add("target", target + " (" + t->StatusText() + ")", StatusTone(t->status));
  add("replicas",
      std::to_string(d->replicas_ready) + " ready of " + std::to_string(d->replicas_desired),
      DeploymentTone(*d));
  add("ttft p50 / p99", Fixed(d->ttft_p50_ms, 1) + " / " + Fixed(d->ttft_p99_ms, 1) + " ms");
  add("tokens/s", Fixed(d->tokens_per_s, 1));
  add("queue depth", std::to_string(d->queue_depth));
  add("tokens generated", std::to_string(d->generated_tokens_total));
  add("gpus requested", Fixed(d->gpus_requested, 1));
  add("model sha256", d->model_sha256.empty() ? "-" : d->model_sha256);
  add("spec digest", d->spec_digest.empty() ? "-" : d->spec_digest);
  add("engine build", d->engine_build_id.empty() ? "-" : d->engine_build_id);
  add("sampled", FormatClockTime(d->sampled_at, s.loaded_at));
  const std::string prefix = "deployment." + name + ".";
  for (const auto& f : s.facts) {
    if (f.target == target && f.key.rfind(prefix, 0) == 0 &&
        f.key.find("spec_digest") == std::string::npos &&
        f.key.find("model_sha256") == std::string::npos) {
      add(f.key.substr(prefix.size()), f.value, Tone::kDim);
    }
  }
  // Every row stands for the deployment, so actions work from any of them.
  if (!v.rows.empty()) {
    v.rows.front().target = target;
  }
  return v;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string_view ViewName(ViewId v) {
  switch (v) {
    case ViewId::kFleet:
      return "fleet";
    case ViewId::kDeploy:
      return "deploy";
    case ViewId::kAlerts:
      return "alerts";
    case ViewId::kAudit:
      return "audit";
    case ViewId::kCost:
      return "cost";
    case ViewId::kTarget:
      return "target";
    case ViewId::kDeployment:
      return "deployment";
  }
  return "?";
}

ViewTable BuildView(ViewId view, const ConsoleSnapshot& snap, const std::string& context) {
  switch (view) {
    case ViewId::kFleet:
      return Fleet(snap);
    case ViewId::kDeploy:
      return Deploy(snap);
    case ViewId::kAlerts:
      return Alerts(snap);
    case ViewId::kAudit:
      return Audit(snap);
    case ViewId::kCost:
      return Cost(snap);
    case ViewId::kTarget:
      return TargetDetail(snap, context);
    case ViewId::kDeployment:
      return DeploymentDetail(snap, context);
  }
  return {};
}

std::vector<const Row*> FilterRows(const ViewTable& table, std::string_view filter) {
  std::vector<const Row*> out;
  const std::string f = Lower(filter);
  for (const auto& r : table.rows) {
    if (f.empty()) {
      out.push_back(&r);
      continue;
    }
    for (const auto& c : r.cells) {
      if (Lower(c).find(f) != std::string::npos) {
        out.push_back(&r);
        break;
      }
    }
  }
  return out;
}

std::vector<int> FitColumns(const ViewTable& table, const std::vector<const Row*>& rows,
                            int width) {
  const size_t n = table.columns.size();
  std::vector<int> w(n, 0), floor(n, 3);
  for (size_t i = 0; i < n; ++i) {
    w[i] = static_cast<int>(table.columns[i].title.size());
    floor[i] = std::max(3, std::min(w[i], 8));
  }
  for (const Row* r : rows) {
    for (size_t i = 0; i < n && i < r->cells.size(); ++i) {
      w[i] = std::max(w[i], static_cast<int>(r->cells[i].size()));
    }
  }
  const int avail = std::max(0, width - static_cast<int>(n > 0 ? n - 1 : 0));
  auto total = [&] { return std::accumulate(w.begin(), w.end(), 0); };
  // Cut shrinkable columns first, then the widest of all, one character at a time.
  for (int pass = 0; pass < 2 && total() > avail; ++pass) {
    while (total() > avail) {
      int widest = -1;
      for (size_t i = 0; i < n; ++i) {
        if (pass == 0 && !table.columns[i].shrink) continue;
        if (w[i] <= floor[i]) continue;
        if (widest < 0 || w[i] > w[widest]) widest = static_cast<int>(i);
      }
      if (widest < 0) break;
      --w[widest];
    }
  }
  // Still too wide (a very narrow terminal): the last columns go.
  while (total() > avail && !w.empty()) {
    int last = static_cast<int>(w.size()) - 1;
    while (last >= 0 && w[last] == 0) --last;
    if (last < 0) break;
    w[last] = 0;
  }
  return w;
}

std::string FitText(std::string_view text, int width, bool right) {
  if (width <= 0) return {};
  if (static_cast<int>(text.size()) > width) {
    std::string cut(text.substr(0, width));
    cut.back() = '~';
    return cut;
  }
  std::string pad(width - text.size(), ' ');
  return right ? pad + std::string(text) : std::string(text) + pad;
}

}  // namespace sextant::tui
