// Field-level differences between two deployment specs, computed on their canonical forms, and
// the one edit `sextant scale` makes to a spec (its replica bounds).
//
// A difference names the field as a dotted path of the canonical form ("engine.sampling.topK",
// "validation.prompts[1]"; a list whose length changed is named as the list). The *scaling
// fields* are resources.replicas.min, resources.replicas.max and every field of `scaling`: they
// decide how many replicas run and when, never what a replica outputs, so a validation report of
// one spec stands for another spec that differs from it in those fields alone
// (report/carried_report.h).
//
// Thread-safety: free functions of their arguments.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "app/common/deployment_spec.h"
#include "engine/base/status.h"

namespace sextant::spec {

struct FieldDifference {
  std::string field;   // dotted path in the canonical form
  std::string before;  // canonical JSON of the value in the first spec ("" when absent)
  std::string after;   // canonical JSON of the value in the second spec ("" when absent)
};

// Every field whose canonical value differs, in canonical key order. Empty: same digest.
std::vector<FieldDifference> DiffSpecs(const DeploymentSpec& before, const DeploymentSpec& after);

// resources.replicas.min / .max and scaling.* (see above).
bool IsScalingField(std::string_view field);

// OK when every difference between the specs is a scaling field (no difference at all too);
// FAILED_PRECONDITION otherwise, naming the first other field with both values.
Status CheckOnlyScalingDiffers(const DeploymentSpec& before, const DeploymentSpec& after);

// The spec with resources.replicas.min/max replaced and nothing else changed, checked by the
// spec parser's own rules (0 <= min <= 10000, 1 <= max <= 10000, max >= min): INVALID_ARGUMENT
// naming the field otherwise.
Result<DeploymentSpec> WithReplicaBounds(const DeploymentSpec& spec, int replicas_min,
                                         int replicas_max);

}  // namespace sextant::spec
