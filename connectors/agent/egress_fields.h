// What a response carries out of the agent, field by field: a walk over the protobuf message by
// reflection, so that a field added to any response is measured without anyone listing it.
// Each field of the message that is set counts its serialized bytes (tag, length and value)
// under the egress class it declares ((sextant.v1.egress) in agent.proto). A message-typed
// field that declares no class is walked into: its own fields count, and its tag and length
// count as "framing". A scalar, string or bytes field that declares no class, and any unknown
// field, counts as "unclassified": the egress ledger treats those bytes as payload.
//
// The bytes of the returned list add up to msg.ByteSizeLong().
// Thread-safety: a pure function of its argument.
#pragma once

#include <string>
#include <vector>

#include "app/agent/audit/egress_ledger.h"

namespace google::protobuf {
class Message;
}

namespace sextant::rpc {

// One entry per field (by full name) with the bytes summed over repeated occurrences.
std::vector<agent::FieldBytes> MeasureEgress(const google::protobuf::Message& msg);

// The class name a field declares ("identity", "metadata", "figures", "digest", "verdict",
// "audit", "spec", "fact"), or "unclassified".
std::string EgressClassName(int egress_class);

}  // namespace sextant::rpc
