// PriceCatalog: list prices of GPU instances per provider, region and pricing model, read from
// dated CSV files (resources/prices/*.csv), with a customer's overrides (discounts, committed
// prices) on top.
//
// Catalog CSV header (exactly, in this order):
//   provider,region,gpu_model,gpus_per_instance,instance_type,on_demand_usd_per_hour,
//   spot_usd_per_hour,reserved_usd_per_hour,source,price_date
// A price may be empty (not offered); price_date is YYYY-MM-DD. Blank lines and lines starting
// with '#' are skipped. A malformed row is an error naming file:line and the field.
//
// Override CSV header:
//   provider,region,instance_type,pricing,usd_per_hour,discount_percent,note
// region and instance_type may be '*'; pricing is on_demand, spot or reserved; exactly one of
// usd_per_hour (a fixed instance price) or discount_percent (off the list price) is set. The
// most specific matching override wins (exact fields beat '*'); later lines beat earlier ones.
//
// Thread-safety: a loaded catalog is immutable and safe to share between threads.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace sextant::console {

enum class PricingModel { kOnDemand, kSpot, kReserved };
std::string_view PricingModelName(PricingModel m);
Result<PricingModel> ParsePricingModel(std::string_view s);

struct PriceRow {
  std::string provider;
  std::string region;
  std::string gpu_model;
  int gpus_per_instance = 0;
  std::string instance_type;
  std::optional<double> on_demand;  // USD per instance-hour
  std::optional<double> spot;
  std::optional<double> reserved;
  std::string source;
  std::string price_date;
  std::string origin;  // "file:line"

  std::optional<double> Price(PricingModel m) const;
};

struct PriceOverride {
  std::string provider;
  std::string region;         // or "*"
  std::string instance_type;  // or "*"
  PricingModel pricing = PricingModel::kOnDemand;
  std::optional<double> usd_per_hour;
  std::optional<double> discount_percent;
  std::string note;
  std::string origin;
};

// The price of one GPU for one hour, and where it came from.
struct GpuRate {
  double usd_per_gpu_hour = 0;
  std::string instance_type;
  std::string gpu_model;
  std::string origin;  // catalog file:line, plus the override's when one applied
};

// What a target runs on, for pricing.
struct PricingKey {
  std::string provider;
  std::string region;
  std::string instance_type;  // preferred; when empty, the gpu_model picks the row
  std::string gpu_model;
  PricingModel pricing = PricingModel::kOnDemand;
};

class PriceCatalog {
 public:
  // Parses one catalog file, or every *.csv of a directory (in name order).
  static Result<PriceCatalog> LoadFile(const std::filesystem::path& file);
  static Result<PriceCatalog> LoadDir(const std::filesystem::path& dir);
  // Parses text as if read from `name` (for error messages).
  static Result<PriceCatalog> Parse(std::string_view text, const std::string& name);

  // Adds the overrides of a customer file. Overrides naming no catalog row are an error.
  Status LoadOverrides(const std::filesystem::path& file);
  Status ParseOverrides(std::string_view text, const std::string& name);

  // The per-GPU-hour rate for key: the row matching provider, region and instance type (or,
  // without an instance type, the smallest instance of that GPU model), divided by its GPUs.
  // NOT_FOUND names what had no price.
  Result<GpuRate> Rate(const PricingKey& key) const;

  const std::vector<PriceRow>& rows() const { return rows_; }
  const std::vector<PriceOverride>& overrides() const { return overrides_; }

 private:
  std::vector<PriceRow> rows_;
  std::vector<PriceOverride> overrides_;
};

// Splits one CSV record (RFC 4180 quoting, no embedded newlines). Error on an unterminated quote.
Result<std::vector<std::string>> SplitCsvLine(std::string_view line);

}  // namespace sextant::console
