// Price catalogs (CSV) and customer overrides on any text: an error naming the line, or rows
// whose rates are finite and not negative.
#include <cmath>
#include <cstdint>
#include <string>

#include "app/console/cost/price_catalog.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t split = text.find("\n\n");
  auto catalog = sextant::console::PriceCatalog::Parse(text.substr(0, split), "prices.csv");
  if (!catalog.ok()) {
    SEXTANT_FUZZ_CHECK(!catalog.status().message().empty());
    return 0;
  }
  for (const auto& row : catalog->rows()) {
    SEXTANT_FUZZ_CHECK(row.gpus_per_instance > 0);
    for (const auto& price : {row.on_demand, row.spot, row.reserved}) {
      if (price) SEXTANT_FUZZ_CHECK(std::isfinite(*price) && *price >= 0);
    }
  }
  if (split != std::string::npos) {
    (void)catalog->ParseOverrides(text.substr(split + 2), "overrides.csv");
  }
  (void)sextant::console::SplitCsvLine(text.substr(0, text.find('\n')));
  return 0;
}
