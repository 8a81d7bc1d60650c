#include "app/console/cloud/cloud_provider.h"

#include <algorithm>
#include <cctype>
#include <tuple>

namespace sextant::console::cloud {

std::string_view ProbeOutcomeName(ProbeOutcome o) {
  switch (o) {
    case ProbeOutcome::kAllowed:
      return "allowed";
    case ProbeOutcome::kDenied:
      return "denied";
    case ProbeOutcome::kFailed:
      return "failed";
  }
  return "failed";
}

bool AccessReport::AllAllowed() const {
  return std::all_of(probes.begin(), probes.end(),
                     [](const ApiProbe& p) { return p.outcome == ProbeOutcome::kAllowed; });
}

namespace {

std::string FoldGpuName(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ' ' || c == '-' || c == '_') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace

bool GpuNameMatches(std::string_view provider_name, std::string_view wanted) {
  return FoldGpuName(provider_name) == FoldGpuName(wanted);
}

std::vector<GpuOffer> FilterAndSortOffers(std::vector<GpuOffer> offers, const OfferQuery& query) {
  std::erase_if(offers, [&](const GpuOffer& o) {
    if (!query.gpu.empty() && !GpuNameMatches(o.type.gpu, query.gpu)) return true;
    if (o.type.gpu_count < query.min_gpus) return true;
    if (!query.region.empty() && o.region != query.region) return true;
    return false;
  });
  const bool spot_first = query.sort_by == OfferQuery::SortBy::kSpot;
  auto key = [&](const GpuOffer& o) {
    std::optional<double> primary = spot_first ? o.SpotPerGpuHour() : o.OnDemandPerGpuHour();
    std::optional<double> secondary = spot_first ? o.OnDemandPerGpuHour() : o.SpotPerGpuHour();
    // Offers with the asked-for price first (cheapest first), then those with only the other
    // price, then those with neither.
    const int rank = primary ? 0 : (secondary ? 1 : 2);
    const double price = primary ? *primary : (secondary ? *secondary : 0.0);
    return std::make_tuple(rank, price, o.region, o.zone, o.type.instance_type, o.account);
  };
  std::stable_sort(offers.begin(), offers.end(),
                   [&](const GpuOffer& a, const GpuOffer& b) { return key(a) < key(b); });
  return offers;
}

}  // namespace sextant::console::cloud
