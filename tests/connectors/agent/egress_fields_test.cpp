// What leaves the agent is measured field by field: every field of every response the API can
// send declares what it carries, the bytes of a response add up field by field, and a field
// added to a response without a declaration is counted as possible payload, by name: the egress
// ledger shows it instead of letting it leave unseen.
#include "connectors/agent/egress_fields.h"

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "app/agent/audit/egress_ledger.h"
#include "sextant/v1/agent.pb.h"

namespace sextant::rpc {
namespace {

namespace pb = ::google::protobuf;
namespace v1 = ::sextant::v1;

std::map<std::string, agent::FieldBytes> ByField(const pb::Message& m) {
  std::map<std::string, agent::FieldBytes> out;
  for (auto& f : MeasureEgress(m)) out[f.field] = f;
  return out;
}

int64_t Sum(const pb::Message& m) {
  int64_t total = 0;
  for (const auto& f : MeasureEgress(m)) total += f.bytes;
  return total;
}

v1::RunValidationResponse SampleValidation() {
  v1::RunValidationResponse r;
  r.set_name("chat");
  r.set_generation(3);
  r.set_spec_digest("sha256:" + std::string(64, 'a'));
  r.set_backend("cpu");
  r.set_output_matches(true);
  r.set_prompts_matching(2);
  for (int i = 0; i < 2; ++i) {
    auto* p = r.add_prompts();
    p->set_index(i);
    p->set_prompt_digest(std::string(64, 'b'));
    p->set_ttft_ms(12.5);
    p->set_output_matches(true);
  }
  return r;
}

// Every field reachable from a response of the service, recursively: a field that declares a
// class counts under it; a message-typed field without one is walked into; anything else has
// no declaration.
void CheckDeclared(const pb::Descriptor* d, std::set<std::string>* seen,
                   std::vector<std::string>* undeclared) {
  if (!seen->insert(d->full_name()).second) return;
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->options().GetExtension(v1::egress) != v1::EGRESS_UNCLASSIFIED) continue;
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_map()) {
      CheckDeclared(f->message_type(), seen, undeclared);
    } else {
      undeclared->push_back(f->full_name());
    }
  }
}

TEST(EgressFields, EveryResponseFieldDeclaresWhatItCarries) {
  const auto* service = v1::WhoAmIRequest::descriptor()->file()->FindServiceByName("AgentService");
  ASSERT_NE(service, nullptr);
  std::set<std::string> seen;
  std::vector<std::string> undeclared;
  for (int i = 0; i < service->method_count(); ++i) {
    CheckDeclared(service->method(i)->output_type(), &seen, &undeclared);
  }
  EXPECT_TRUE(undeclared.empty()) << "fields without (sextant.v1.egress): " << [&] {
    std::string s;
    for (const auto& u : undeclared) s += u + " ";
    return s;
  }();
  EXPECT_GE(seen.size(), 20u);
}

TEST(EgressFields, AResponseAddsUpFieldByFieldUnderItsDeclaredClasses) {
  const v1::RunValidationResponse r = SampleValidation();
  EXPECT_EQ(Sum(r), static_cast<int64_t>(r.ByteSizeLong()));
  auto by = ByField(r);
  EXPECT_EQ(by["sextant.v1.PromptResult.output_matches"].egress_class, "verdict");
  EXPECT_EQ(by["sextant.v1.PromptResult.output_matches"].bytes, 4);  // 2 x (tag + 1 byte)
  EXPECT_EQ(by["sextant.v1.RunValidationResponse.spec_digest"].egress_class, "digest");
  EXPECT_EQ(by["sextant.v1.RunValidationResponse.prompts"].egress_class, "framing");
  for (const auto& [name, f] : by) EXPECT_NE(f.egress_class, agent::kUnclassifiedEgress) << name;

  v1::ComplianceFacts facts;
  facts.mutable_cloud()->set_region("eu-west-1");
  auto* f = facts.add_facts();
  f->set_name("tls.mtls_enforced");
  f->set_value("true");
  f->set_source("measured: loopback");
  EXPECT_EQ(Sum(facts), static_cast<int64_t>(facts.ByteSizeLong()));
}

// A newer build, or a change to agent.proto, adds a text field to RunValidationResponse (here:
// the response's descriptor rebuilt with one more field, as protoc would make it). Measured
// with the same code, the field shows up by name, as unclassified: possible payload.
TEST(EgressFields, AFieldAddedToAResponseWithoutADeclarationCountsAsPayload) {
  pb::FileDescriptorProto descriptor_proto, file;
  pb::FileDescriptorProto::descriptor()->file()->CopyTo(&descriptor_proto);
  v1::RunValidationResponse::descriptor()->file()->CopyTo(&file);
  bool added = false;
  for (auto& m : *file.mutable_message_type()) {
    if (m.name() != "RunValidationResponse") continue;
    auto* f = m.add_field();
    f->set_name("output_text");
    f->set_number(100);
    f->set_type(pb::FieldDescriptorProto::TYPE_STRING);
    f->set_label(pb::FieldDescriptorProto::LABEL_OPTIONAL);
    added = true;
  }
  ASSERT_TRUE(added);
  pb::DescriptorPool pool;
  ASSERT_NE(pool.BuildFile(descriptor_proto), nullptr);
  const pb::FileDescriptor* fd = pool.BuildFile(file);
  ASSERT_NE(fd, nullptr);
  const pb::Descriptor* d = fd->FindMessageTypeByName("RunValidationResponse");
  ASSERT_NE(d, nullptr);
  pb::DynamicMessageFactory factory(&pool);
  std::unique_ptr<pb::Message> m(factory.GetPrototype(d)->New());
  ASSERT_TRUE(m->ParseFromString(SampleValidation().SerializeAsString()));
  const std::string text = "Once upon a time there was a little dog";
  m->GetReflection()->SetString(m.get(), d->FindFieldByName("output_text"), text);

  auto by = ByField(*m);
  const auto& leaked = by["sextant.v1.RunValidationResponse.output_text"];
  EXPECT_EQ(leaked.egress_class, agent::kUnclassifiedEgress);
  EXPECT_EQ(leaked.bytes, static_cast<int64_t>(2 + 1 + text.size()));  // tag (2) + length + text
  EXPECT_EQ(Sum(*m), static_cast<int64_t>(m->ByteSizeLong()));

  // Recorded as the agent records a response to the vendor: "payload" is no longer 0, and the
  // field is named.
  agent::EgressLedger ledger;
  ASSERT_TRUE(ledger.RecordResponse("spiffe://x/vendor/op", "vendor-operator", "RunValidation",
                                    "validation-digest", static_cast<int64_t>(m->ByteSizeLong()),
                                    MeasureEgress(*m)));
  EXPECT_EQ(ledger.VendorBytesByKind().at("payload"), leaked.bytes);
  bool named = false;
  for (const auto& row : ledger.FieldRows()) {
    named = named || (row.field == "sextant.v1.RunValidationResponse.output_text" &&
                      row.egress_class == agent::kUnclassifiedEgress && row.bytes == leaked.bytes);
  }
  EXPECT_TRUE(named);
}

TEST(EgressFields, FieldsNotInTheSchemaCountAsPayloadToo) {
  v1::WhoAmIResponse r;
  r.set_identity("spiffe://x/vendor/op");
  r.GetReflection()->MutableUnknownFields(&r)->AddLengthDelimited(99, "a generated continuation");
  auto by = ByField(r);
  const auto& unknown = by["sextant.v1.WhoAmIResponse.<unknown fields>"];
  EXPECT_EQ(unknown.egress_class, agent::kUnclassifiedEgress);
  EXPECT_GT(unknown.bytes, 20);
  EXPECT_EQ(Sum(r), static_cast<int64_t>(r.ByteSizeLong()));
}

}  // namespace
}  // namespace sextant::rpc
