#include "app/console/cost/cost_model.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

#include "app/common/fact_keys.h"
#include "engine/base/time.h"

namespace sextant::console {
namespace {

constexpr double kSecondsPerHour = 3600.0;

void Add(CostLine& into, const CostLine& from) {
  into.gpu_hours_provisioned += from.gpu_hours_provisioned;
  into.gpu_hours_allocated += from.gpu_hours_allocated;
  into.provisioned_usd += from.provisioned_usd;
  into.allocated_usd += from.allocated_usd;
  into.idle_usd += from.idle_usd;
  into.generated_tokens += from.generated_tokens;
  into.prompt_tokens += from.prompt_tokens;
}

// Per (target, hour): the priced figures of the target and of each deployment on it.
struct PricedHour {
  std::string target;
  console::TimeMs hour = 0;
  CostLine target_line;                                       // provisioned, allocated (sum), idle
  std::vector<std::pair<std::string, CostLine>> deployments;  // name -> allocated, tokens
};

std::vector<PricedHour> Price(const std::vector<console::HourUsage>& usage,
                              const std::vector<TargetInfo>& targets, const PriceCatalog& catalog,
                              std::vector<std::string>* unpriced) {
  std::map<std::string, const TargetInfo*> by_name;
  for (const auto& t : targets) by_name[t.name] = &t;
  std::map<std::string, std::optional<double>> rates;
  auto rate_of = [&](const std::string& target) -> std::optional<double> {
    auto it = rates.find(target);
    if (it != rates.end()) return it->second;
    std::optional<double> r;
    auto info = by_name.find(target);
    if (info == by_name.end()) {
      unpriced->push_back(target + ": not a known target");
    } else {
      auto rate = catalog.Rate(info->second->pricing);
      if (rate.ok()) {
        r = rate->usd_per_gpu_hour;
      } else {
        unpriced->push_back(target + ": " + rate.status().message());
      }
    }
    rates[target] = r;
    return r;
  };
  std::map<std::pair<std::string, console::TimeMs>, PricedHour> hours;
  for (const auto& u : usage) {
    auto r = rate_of(u.target);
    if (!r) continue;
    PricedHour& h = hours[{u.target, u.hour}];
    h.target = u.target;
    h.hour = u.hour;
    if (u.deployment.empty()) {
      h.target_line.gpu_hours_provisioned += u.gpu_seconds_provisioned / kSecondsPerHour;
      h.target_line.provisioned_usd += u.gpu_seconds_provisioned / kSecondsPerHour * *r;
    } else {
      CostLine d;
      d.gpu_hours_allocated =
          std::max(u.gpu_seconds_requested, u.gpu_seconds_used) / kSecondsPerHour;
      d.allocated_usd = d.gpu_hours_allocated * *r;
      d.generated_tokens = u.tokens_generated;
      d.prompt_tokens = u.tokens_prompt;
      h.deployments.emplace_back(u.deployment, d);
    }
  }
  std::vector<PricedHour> out;
  for (auto& [k, h] : hours) {
    for (const auto& [name, d] : h.deployments) {
      h.target_line.gpu_hours_allocated += d.gpu_hours_allocated;
      h.target_line.allocated_usd += d.allocated_usd;
      h.target_line.generated_tokens += d.generated_tokens;
      h.target_line.prompt_tokens += d.prompt_tokens;
    }
    h.target_line.idle_usd =
        std::max(0.0, h.target_line.provisioned_usd - h.target_line.allocated_usd);
    out.push_back(std::move(h));
  }
  std::sort(unpriced->begin(), unpriced->end());
  return out;
}

void Finish(CostLine& l) {
  if (l.generated_tokens > 0) {
    l.usd_per_million_tokens = l.allocated_usd / static_cast<double>(l.generated_tokens) * 1e6;
  }
}

}  // namespace

Result<GroupBy> ParseGroupBy(std::string_view s) {
  if (s == "deployment") return GroupBy::kDeployment;
  if (s == "target") return GroupBy::kTarget;
  if (s == "account") return GroupBy::kAccount;
  if (s == "label") return GroupBy::kLabel;
  if (s == "day") return GroupBy::kDay;
  return Status::InvalidArgument("cannot group cost by '" + std::string(s) +
                                 "' (deployment, target, account, label or day)");
}

CostReport ComputeCost(const std::vector<console::HourUsage>& usage,
                       const std::vector<TargetInfo>& targets, const PriceCatalog& catalog,
                       GroupBy by) {
  CostReport report;
  std::map<std::string, const TargetInfo*> info;
  for (const auto& t : targets) info[t.name] = &t;
  const auto priced = Price(usage, targets, catalog, &report.unpriced);
  std::map<std::string, CostLine> groups;
  for (const auto& h : priced) {
    Add(report.total, h.target_line);
    const TargetInfo* t = info.count(h.target) ? info[h.target] : nullptr;
    switch (by) {
      case GroupBy::kDeployment:
        for (const auto& [name, d] : h.deployments) Add(groups[h.target + "/" + name], d);
        break;
      case GroupBy::kTarget:
        Add(groups[h.target], h.target_line);
        break;
      case GroupBy::kAccount:
        Add(groups[t && !t->account.empty() ? t->account : "(none)"], h.target_line);
        break;
      case GroupBy::kLabel:
        if (t == nullptr || t->labels.empty()) {
          Add(groups["(unlabelled)"], h.target_line);
        } else {
          for (const auto& [k, v] : t->labels) Add(groups[k + "=" + v], h.target_line);
        }
        break;
      case GroupBy::kDay:
        Add(groups[FormatDate(h.hour)], h.target_line);
        break;
    }
  }
  for (auto& [key, line] : groups) {
    line.key = key;
    Finish(line);
    report.lines.push_back(line);
  }
  report.total.key = "total";
  Finish(report.total);
  return report;
}

std::string_view BudgetStateName(BudgetState s) {
  switch (s) {
    case BudgetState::kWarning:
      return "warning";
    case BudgetState::kBreach:
      return "breach";
    case BudgetState::kOk:
      break;
  }
  return "ok";
}

std::vector<BudgetStatus> EvaluateBudgets(const std::vector<console::Budget>& budgets,
                                          const std::vector<console::HourUsage>& usage,
                                          const std::vector<TargetInfo>& targets,
                                          const PriceCatalog& catalog, console::TimeMs now) {
  std::vector<BudgetStatus> out;
  for (const auto& b : budgets) {
    const console::TimeMs since = now - static_cast<console::TimeMs>(b.window_days) * 86'400'000;
    std::vector<console::HourUsage> window;
    for (const auto& u : usage) {
      if (u.hour + 3'600'000 > since) window.push_back(u);
    }
    CostReport r = ComputeCost(window, targets, catalog, GroupBy::kLabel);
    BudgetStatus s;
    s.budget = b;
    for (const auto& l : r.lines) {
      if (l.key == b.label) s.spent_usd = l.provisioned_usd;
    }
    s.ratio = s.spent_usd / b.amount_usd;
    s.state = s.ratio >= 1.0            ? BudgetState::kBreach
              : s.ratio >= b.warn_ratio ? BudgetState::kWarning
                                        : BudgetState::kOk;
    out.push_back(s);
  }
  return out;
}

std::vector<TargetInfo> TargetsFromStore(const std::vector<console::Target>& targets,
                                         const std::vector<console::Fact>& facts,
                                         const std::vector<console::Gpu>& gpus) {
  std::vector<TargetInfo> out;
  for (const auto& t : targets) {
    TargetInfo i;
    i.name = t.name;
    i.account = t.account;
    i.labels = t.labels;
    for (const auto& f : facts) {
      if (f.target != t.name) continue;
      if (f.key == facts::kCloudProvider) i.pricing.provider = f.value;
      if (f.key == facts::kCloudRegion) i.pricing.region = f.value;
      if (f.key == facts::kCloudInstanceType) i.pricing.instance_type = f.value;
      if (f.key == facts::kCloudGpuModel) i.pricing.gpu_model = f.value;
      if (f.key == facts::kCloudPricing) {
        auto pm = ParsePricingModel(f.value);
        if (pm.ok()) i.pricing.pricing = *pm;
      }
    }
    if (i.pricing.gpu_model.empty()) {
      for (const auto& g : gpus) {
        if (g.target == t.name && !g.model.empty()) {
          i.pricing.gpu_model = CatalogGpuModel(g.model);
          break;
        }
      }
    }
    out.push_back(std::move(i));
  }
  return out;
}

std::string CatalogGpuModel(std::string_view reported) {
  std::string up(reported);
  for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto has_token = [&](const std::string& t) {
    for (size_t p = up.find(t); p != std::string::npos; p = up.find(t, p + 1)) {
      const bool left = p == 0 || !std::isalnum(static_cast<unsigned char>(up[p - 1]));
      const size_t e = p + t.size();
      const bool right = e >= up.size() || !std::isalnum(static_cast<unsigned char>(up[e]));
      if (left && right) return true;
    }
    return false;
  };
  if (up.find("MI300X") != std::string::npos) return "MI300X";
  if (up.find("H200") != std::string::npos) return "H200";
  if (up.find("H100") != std::string::npos) return "H100";
  if (up.find("A100") != std::string::npos) {
    return up.find("80G") != std::string::npos ? "A100-80GB" : "A100";
  }
  if (has_token("L4")) return "L4";
  return std::string(reported);
}

Result<int64_t> ParseSince(std::string_view s) {
  if (s.size() < 2)
    return Status::InvalidArgument("--since '" + std::string(s) + "': use 7d, 24h or 90m");
  const char unit = s.back();
  int64_t n = 0;
  for (char c : s.substr(0, s.size() - 1)) {
    if (c < '0' || c > '9' || n > 100'000'000) {
      return Status::InvalidArgument("--since '" + std::string(s) + "': use 7d, 24h or 90m");
    }
    n = n * 10 + (c - '0');
  }
  switch (unit) {
    case 'd':
      return n * 86'400'000;
    case 'h':
      return n * 3'600'000;
    case 'm':
      return n * 60'000;
    default:
      return Status::InvalidArgument("--since '" + std::string(s) + "': use 7d, 24h or 90m");
  }
}

}  // namespace sextant::console
