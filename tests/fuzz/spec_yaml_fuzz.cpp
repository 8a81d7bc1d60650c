// Deployment specs (YAML) on any text: errors name a line, and a spec that parses has a
// canonical JSON form that parses back to the same digest.
#include <cstdint>
#include <string>

#include "app/common/deployment_spec.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  sextant::spec::SpecParseResult parsed = sextant::spec::ParseDeploymentSpec(text);
  if (!parsed.ok()) {
    for (const auto& e : parsed.errors) SEXTANT_FUZZ_CHECK(!e.message.empty());
    return 0;
  }
  const std::string canonical = sextant::spec::ToCanonicalJsonValue(parsed.spec).dump();
  sextant::spec::SpecParseResult again = sextant::spec::ParseDeploymentSpec(canonical);
  SEXTANT_FUZZ_CHECK(again.ok());
  SEXTANT_FUZZ_CHECK(sextant::spec::SpecDigest(again.spec) ==
                     sextant::spec::SpecDigest(parsed.spec));
  return 0;
}
