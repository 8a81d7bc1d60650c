#include "connectors/agent/egress_fields.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/wire_format.h>

#include <map>

#include "sextant/v1/agent.pb.h"

namespace sextant::rpc {

namespace {

namespace pb = ::google::protobuf;
using pb::internal::WireFormat;

void Add(std::map<std::string, agent::FieldBytes>* out, const std::string& field,
         const std::string& cls, int64_t bytes) {
  if (bytes <= 0) return;
  agent::FieldBytes& f = (*out)[field];
  f.field = field;
  f.egress_class = cls;
  f.bytes += bytes;
}

void Walk(const pb::Message& m, std::map<std::string, agent::FieldBytes>* out) {
  const pb::Reflection* r = m.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    const int cls = f->options().GetExtension(::sextant::v1::egress);
    const int64_t total = static_cast<int64_t>(WireFormat::FieldByteSize(f, m));
    if (cls != ::sextant::v1::EGRESS_UNCLASSIFIED ||
        f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_map()) {
      Add(out, f->full_name(), EgressClassName(cls), total);
      continue;
    }
    int64_t inner = 0;
    if (f->is_repeated()) {
      const int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        const pb::Message& sub = r->GetRepeatedMessage(m, f, i);
        inner += static_cast<int64_t>(sub.ByteSizeLong());
        Walk(sub, out);
      }
    } else {
      const pb::Message& sub = r->GetMessage(m, f);
      inner = static_cast<int64_t>(sub.ByteSizeLong());
      Walk(sub, out);
    }
    Add(out, f->full_name(), "framing", total - inner);
  }
  const pb::UnknownFieldSet& unknown = r->GetUnknownFields(m);
  if (!unknown.empty()) {
    Add(out, m.GetDescriptor()->full_name() + ".<unknown fields>", agent::kUnclassifiedEgress,
        static_cast<int64_t>(WireFormat::ComputeUnknownFieldsSize(unknown)));
  }
}

}  // namespace

std::string EgressClassName(int c) {
  switch (c) {
    case ::sextant::v1::EGRESS_IDENTITY:
      return "identity";
    case ::sextant::v1::EGRESS_METADATA:
      return "metadata";
    case ::sextant::v1::EGRESS_FIGURES:
      return "figures";
    case ::sextant::v1::EGRESS_DIGEST:
      return "digest";
    case ::sextant::v1::EGRESS_VERDICT:
      return "verdict";
    case ::sextant::v1::EGRESS_AUDIT:
      return "audit";
    case ::sextant::v1::EGRESS_SPEC:
      return "spec";
    case ::sextant::v1::EGRESS_FACT:
      return "fact";
    default:
      return agent::kUnclassifiedEgress;
  }
}

std::vector<agent::FieldBytes> MeasureEgress(const pb::Message& msg) {
  std::map<std::string, agent::FieldBytes> by_field;
  Walk(msg, &by_field);
  std::vector<agent::FieldBytes> out;
  out.reserve(by_field.size());
  for (auto& [name, f] : by_field) out.push_back(std::move(f));
  return out;
}

}  // namespace sextant::rpc
