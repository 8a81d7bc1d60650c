#include "app/console/cost/price_catalog.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sextant::console {
namespace {

constexpr const char* kCatalogHeader =
    "provider,region,gpu_model,gpus_per_instance,instance_type,on_demand_usd_per_hour,"
    "spot_usd_per_hour,reserved_usd_per_hour,source,price_date";
constexpr const char* kOverrideHeader =
    "provider,region,instance_type,pricing,usd_per_hour,discount_percent,note";

Result<std::string> ReadFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

Status RowError(const std::string& where, const std::string& what) {
  return Status::InvalidArgument(where + ": " + what);
}

// A price: empty (absent) or a finite non-negative decimal.
Status ParsePrice(const std::string& text, const std::string& where, const char* field,
                  std::optional<double>* out) {
  if (text.empty()) {
    out->reset();
    return Status();
  }
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || errno != 0 || !std::isfinite(v) || v < 0) {
    return RowError(where, std::string(field) + " '" + text + "' is not a non-negative number");
  }
  *out = v;
  return Status();
}

bool IsDate(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  int month = std::atoi(s.substr(5, 2).c_str());
  int day = std::atoi(s.substr(8, 2).c_str());
  return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

// Calls fn(line_number, fields) for each data line after checking the header.
template <typename Fn>
Status ForEachRecord(std::string_view text, const std::string& name, const char* header,
                     size_t fields, Fn&& fn) {
  size_t line_no = 0;
  bool seen_header = false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string line = Trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    const std::string where = name + ":" + std::to_string(line_no);
    if (line.empty() || line[0] == '#') {
      if (nl == text.size()) break;
      continue;
    }
    if (!seen_header) {
      if (line != header) {
        return RowError(where, std::string("header must be '") + header + "'");
      }
      seen_header = true;
      continue;
    }
    auto split = SplitCsvLine(line);
    if (!split.ok()) return RowError(where, split.status().message());
    if (split->size() != fields) {
      return RowError(where, "expected " + std::to_string(fields) + " fields, found " +
                                 std::to_string(split->size()));
    }
    for (auto& f : *split) f = Trim(f);
    SEXTANT_RETURN_IF_ERROR(fn(where, *split));
    if (nl == text.size()) break;
  }
  if (!seen_header) return RowError(name + ":1", std::string("no header '") + header + "'");
  return Status();
}

}  // namespace

std::string_view PricingModelName(PricingModel m) {
  switch (m) {
    case PricingModel::kSpot:
      return "spot";
    case PricingModel::kReserved:
      return "reserved";
    case PricingModel::kOnDemand:
      break;
  }
  return "on_demand";
}

Result<PricingModel> ParsePricingModel(std::string_view s) {
  if (s == "on_demand" || s == "on-demand" || s == "ondemand") return PricingModel::kOnDemand;
  if (s == "spot" || s == "preemptible") return PricingModel::kSpot;
  if (s == "reserved" || s == "committed") return PricingModel::kReserved;
  return Status::InvalidArgument("pricing '" + std::string(s) +
                                 "' is not on_demand, spot or reserved");
}

std::optional<double> PriceRow::Price(PricingModel m) const {
  switch (m) {
    case PricingModel::kSpot:
      return spot;
    case PricingModel::kReserved:
      return reserved;
    case PricingModel::kOnDemand:
      break;
  }
  return on_demand;
}

Result<std::vector<std::string>> SplitCsvLine(std::string_view line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  bool field_was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur += c;
      }
    } else if (c == '"') {
      if (!Trim(cur).empty() || field_was_quoted) {
        return Status::InvalidArgument("quote inside an unquoted field at column " +
                                       std::to_string(i + 1));
      }
      cur.clear();
      quoted = true;
      field_was_quoted = true;
    } else if (c == ',') {
      out.push_back(std::move(cur));
      cur.clear();
      field_was_quoted = false;
    } else {
      cur += c;
    }
  }
  if (quoted) return Status::InvalidArgument("unterminated quoted field");
  out.push_back(std::move(cur));
  return out;
}

Result<PriceCatalog> PriceCatalog::Parse(std::string_view text, const std::string& name) {
  PriceCatalog cat;
  Status parsed = (ForEachRecord(
      text, name, kCatalogHeader, 10,
      [&](const std::string& where, const std::vector<std::string>& f) -> Status {
        PriceRow r;
        r.provider = f[0];
        r.region = f[1];
        r.gpu_model = f[2];
        r.instance_type = f[4];
        r.source = f[8];
        r.price_date = f[9];
        r.origin = where;
        if (r.provider.empty()) return RowError(where, "provider is empty");
        if (r.region.empty()) return RowError(where, "region is empty");
        if (r.gpu_model.empty()) return RowError(where, "gpu_model is empty");
        if (r.instance_type.empty()) return RowError(where, "instance_type is empty");
        char* end = nullptr;
        long n = std::strtol(f[3].c_str(), &end, 10);
        if (f[3].empty() || end != f[3].c_str() + f[3].size() || n <= 0 || n > 1024) {
          return RowError(where, "gpus_per_instance '" + f[3] + "' is not a positive integer");
        }
        r.gpus_per_instance = static_cast<int>(n);
        SEXTANT_RETURN_IF_ERROR(ParsePrice(f[5], where, "on_demand_usd_per_hour", &r.on_demand));
        SEXTANT_RETURN_IF_ERROR(ParsePrice(f[6], where, "spot_usd_per_hour", &r.spot));
        SEXTANT_RETURN_IF_ERROR(ParsePrice(f[7], where, "reserved_usd_per_hour", &r.reserved));
        if (!r.on_demand && !r.spot && !r.reserved) return RowError(where, "row has no price");
        if (r.source.empty()) return RowError(where, "source is empty");
        if (!IsDate(r.price_date)) {
          return RowError(where, "price_date '" + r.price_date + "' is not YYYY-MM-DD");
        }
        for (const auto& other : cat.rows_) {
          if (other.provider == r.provider && other.region == r.region &&
              other.instance_type == r.instance_type) {
            return RowError(where, "duplicate of " + other.origin);
          }
        }
        cat.rows_.push_back(std::move(r));
        return Status();
      }));
  SEXTANT_RETURN_IF_ERROR(parsed);
  return cat;
}

Result<PriceCatalog> PriceCatalog::LoadFile(const std::filesystem::path& file) {
  SEXTANT_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  return Parse(text, file.string());
}

Result<PriceCatalog> PriceCatalog::LoadDir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".csv") files.push_back(e.path());
  }
  if (ec) return Status::NotFound("cannot list " + dir.string() + ": " + ec.message());
  if (files.empty()) return Status::NotFound("no price catalog (*.csv) in " + dir.string());
  std::sort(files.begin(), files.end());
  PriceCatalog all;
  for (const auto& f : files) {
    SEXTANT_ASSIGN_OR_RETURN(PriceCatalog one, LoadFile(f));
    for (auto& r : one.rows_) {
      for (const auto& other : all.rows_) {
        if (other.provider == r.provider && other.region == r.region &&
            other.instance_type == r.instance_type) {
          return RowError(r.origin, "duplicate of " + other.origin);
        }
      }
      all.rows_.push_back(std::move(r));
    }
  }
  return all;
}

Status PriceCatalog::ParseOverrides(std::string_view text, const std::string& name) {
  std::vector<PriceOverride> added;
  Status parsed = (ForEachRecord(
      text, name, kOverrideHeader, 7,
      [&](const std::string& where, const std::vector<std::string>& f) -> Status {
        PriceOverride o;
        o.provider = f[0];
        o.region = f[1];
        o.instance_type = f[2];
        o.note = f[6];
        o.origin = where;
        if (o.provider.empty()) return RowError(where, "provider is empty");
        if (o.region.empty()) return RowError(where, "region is empty (use * for any)");
        if (o.instance_type.empty()) {
          return RowError(where, "instance_type is empty (use * for any)");
        }
        auto pm = ParsePricingModel(f[3]);
        if (!pm.ok()) return RowError(where, pm.status().message());
        o.pricing = *pm;
        SEXTANT_RETURN_IF_ERROR(ParsePrice(f[4], where, "usd_per_hour", &o.usd_per_hour));
        SEXTANT_RETURN_IF_ERROR(ParsePrice(f[5], where, "discount_percent", &o.discount_percent));
        if (o.usd_per_hour.has_value() == o.discount_percent.has_value()) {
          return RowError(where, "set exactly one of usd_per_hour and discount_percent");
        }
        if (o.discount_percent && *o.discount_percent > 100) {
          return RowError(where, "discount_percent must be at most 100");
        }
        const bool matches = std::any_of(rows_.begin(), rows_.end(), [&](const PriceRow& r) {
          return r.provider == o.provider && (o.region == "*" || r.region == o.region) &&
                 (o.instance_type == "*" || r.instance_type == o.instance_type);
        });
        if (!matches) return RowError(where, "override matches no catalog row");
        if (o.usd_per_hour && o.instance_type == "*") {
          return RowError(where, "a fixed usd_per_hour needs an instance_type");
        }
        added.push_back(std::move(o));
        return Status();
      }));
  SEXTANT_RETURN_IF_ERROR(parsed);
  for (auto& o : added) overrides_.push_back(std::move(o));
  return Status();
}

Status PriceCatalog::LoadOverrides(const std::filesystem::path& file) {
  SEXTANT_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  return ParseOverrides(text, file.string());
}

Result<GpuRate> PriceCatalog::Rate(const PricingKey& key) const {
  const PriceRow* row = nullptr;
  for (const auto& r : rows_) {
    if (r.provider != key.provider || r.region != key.region) continue;
    if (!key.instance_type.empty()) {
      if (r.instance_type == key.instance_type) {
        row = &r;
        break;
      }
    } else if (!key.gpu_model.empty() && r.gpu_model == key.gpu_model &&
               r.Price(key.pricing).has_value()) {
      if (row == nullptr || r.gpus_per_instance < row->gpus_per_instance) row = &r;
    }
  }
  const std::string what = key.provider + "/" + key.region + "/" +
                           (key.instance_type.empty() ? key.gpu_model : key.instance_type) + " (" +
                           std::string(PricingModelName(key.pricing)) + ")";
  if (row == nullptr) return Status::NotFound("no catalog row for " + what);
  std::optional<double> list = row->Price(key.pricing);
  GpuRate rate;
  rate.instance_type = row->instance_type;
  rate.gpu_model = row->gpu_model;
  rate.origin = row->origin;
  // The most specific override wins; among equals, the later line.
  const PriceOverride* best = nullptr;
  int best_score = -1;
  for (const auto& o : overrides_) {
    if (o.provider != row->provider || o.pricing != key.pricing) continue;
    if (o.region != "*" && o.region != row->region) continue;
    if (o.instance_type != "*" && o.instance_type != row->instance_type) continue;
    int score = (o.region != "*") + 2 * (o.instance_type != "*");
    if (score >= best_score) {
      best = &o;
      best_score = score;
    }
  }
  double instance_price;
  if (best != nullptr && best->usd_per_hour) {
    instance_price = *best->usd_per_hour;
    rate.origin += " overridden by " + best->origin;
  } else {
    if (!list) return Status::NotFound("catalog row " + row->origin + " has no price for " + what);
    instance_price = *list;
    if (best != nullptr) {
      instance_price *= (1.0 - *best->discount_percent / 100.0);
      rate.origin += " discounted by " + best->origin;
    }
  }
  rate.usd_per_gpu_hour = instance_price / row->gpus_per_instance;
  return rate;
}

}  // namespace sextant::console
