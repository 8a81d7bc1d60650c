#include "app/console/cloud/cloud_types.h"

#include <cmath>

namespace sextant::console::cloud {

std::string CallError::ToString() const {
  std::string s = api_call.empty() ? std::string("request") : api_call;
  if (!region.empty()) s += " (" + region + ")";
  s += ": ";
  s += code.empty() ? std::string("error") : code;
  if (!message.empty()) s += ": " + message;
  if (http_status != 0) s += " [HTTP " + std::to_string(http_status) + "]";
  if (!hint.empty()) s += " (hint: " + hint + ")";
  return s;
}

int64_t QuotaHeadroom::Instances(int vcpus) const {
  if (vcpus <= 0) return 0;
  return static_cast<int64_t>(std::floor(FreeVcpus() / vcpus));
}

namespace {
std::optional<double> PerGpu(const std::optional<DatedPrice>& p, int gpus) {
  if (!p || gpus <= 0) return std::nullopt;
  return p->usd_per_hour / gpus;
}
}  // namespace

std::optional<double> GpuOffer::OnDemandPerGpuHour() const {
  return PerGpu(on_demand, type.gpu_count);
}
std::optional<double> GpuOffer::SpotPerGpuHour() const { return PerGpu(spot, type.gpu_count); }

}  // namespace sextant::console::cloud
