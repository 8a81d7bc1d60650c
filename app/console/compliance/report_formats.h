// Compliance findings as documents: plain JSON, SARIF 2.1.0 (OASIS) and OCSF Compliance
// Finding events (class_uid 2003, schema 1.1.0).
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/console/compliance/pack.h"

namespace sextant::console {

// An array of findings with their evidence and its age.
nlohmann::json FindingsToJson(const std::vector<Finding>& findings);

// One SARIF log with one run: the rules of `packs` as reportingDescriptors and each finding
// as a result (kind pass/fail/open, level by severity), located at its target.
nlohmann::json FindingsToSarif(const std::vector<PolicyPack>& packs,
                               const std::vector<Finding>& findings,
                               const std::string& tool_version, console::TimeMs now);

// An array of OCSF Compliance Finding events, one per finding.
nlohmann::json FindingsToOcsf(const std::vector<Finding>& findings,
                              const std::string& product_version, console::TimeMs now);

}  // namespace sextant::console
