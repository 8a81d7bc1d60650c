// The customer's admission rule: nothing configured refuses every spec and says how to
// configure; approvals in the approvals file (read on every check) admit exactly their digest,
// until they expire; allow-lists admit by digest or by model; what failed to verify is kept
// for the customer's record.
#include "app/agent/policy/admission.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/customer_approver.h"

namespace sextant::agent {
namespace {

namespace fs = std::filesystem;

const std::string kSpec = "sha256:" + std::string(64, '1');
const std::string kOther = "sha256:" + std::string(64, '2');
const std::string kModel = std::string(64, 'c');

fs::path Scratch(const std::string& name) {
  auto dir =
      fs::temp_directory_path() / ("sextant-admission-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(Admission, NothingConfiguredRefusesEverySpecAndSaysHowToConfigure) {
  auto a = Admission::Create({});
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE((*a)->configured());
  auto r = (*a)->Admit(kSpec, kModel);
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("not admitted by this agent's owner"), std::string::npos);
  EXPECT_NE(r.status().message().find("admission.approval_keys"), std::string::npos);
  EXPECT_NE(r.status().message().find("sextant-agent approve"), std::string::npos);
  EXPECT_NE((*a)->Describe().find("every apply is refused"), std::string::npos);
}

TEST(Admission, ApprovalsAdmitTheirDigestOnlyAndUntilTheyExpire) {
  const fs::path dir = Scratch("approvals");
  test_agents::CustomerApprover customer;
  ASSERT_TRUE(customer.Init(dir).ok());
  auto a = Admission::Create(customer.Admission());
  ASSERT_TRUE(a.ok());
  // No file yet.
  std::string detail;
  EXPECT_EQ((*a)->Admit(kSpec, kModel, &detail).status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(detail.find("no approvals file"), std::string::npos) << detail;
  // Approved: admitted at once (the file is read on every check), another digest is not.
  ASSERT_TRUE(customer.Approve(kSpec).ok());
  auto ok = (*a)->Admit(kSpec, kModel);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_NE(ok->rule.find("security@customer.example"), std::string::npos) << ok->rule;
  auto other = (*a)->Admit(kOther, kModel);
  EXPECT_EQ(other.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(other.status().message().find("sextant-agent approve " + kOther), std::string::npos);
  // Expired approvals do not count, and the customer's detail says so.
  ASSERT_TRUE(customer.Approve(kOther, "2020-01-01T00:00:00Z").ok());
  detail.clear();
  EXPECT_FALSE((*a)->Admit(kOther, kModel, &detail).ok());
  EXPECT_NE(detail.find("expired"), std::string::npos) << detail;
  // A line altered by hand (another digest under the same signature) does not admit it.
  std::string text;
  {
    std::ifstream in(customer.approvals());
    std::getline(in, text);
  }
  const std::string third = "sha256:" + std::string(64, '3');
  text.replace(text.find(kSpec), kSpec.size(), third);
  std::ofstream(customer.approvals(), std::ios::app) << text << "\n";
  detail.clear();
  EXPECT_FALSE((*a)->Admit(third, kModel, &detail).ok());
  EXPECT_NE(detail.find("does not verify"), std::string::npos) << detail;
  // Approvals by a key the agent does not trust do not count.
  test_agents::CustomerApprover stranger;
  ASSERT_TRUE(stranger.Init(dir).ok());  // same file
  ASSERT_TRUE(stranger.Approve(third).ok());
  EXPECT_FALSE((*a)->Admit(third, kModel).ok());
  fs::remove_all(dir);
}

TEST(Admission, AllowListsAdmitByDigestOrByModel) {
  AdmissionConfig c;
  c.allowed_spec_digests = {std::string(64, '1')};  // bare hex accepted
  c.allowed_model_sha256 = {"sha256:" + kModel};
  auto a = Admission::Create(c);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE((*a)->Admit(kSpec, std::string(64, 'd')).ok());
  auto by_model = (*a)->Admit(kOther, kModel);
  ASSERT_TRUE(by_model.ok());
  EXPECT_NE(by_model->rule.find("allow_models"), std::string::npos);
  EXPECT_EQ((*a)->Admit(kOther, std::string(64, 'd')).status().code(),
            StatusCode::kPermissionDenied);
  c.allowed_model_sha256 = {"not-a-digest"};
  EXPECT_EQ(Admission::Create(c).status().code(), StatusCode::kInvalidArgument);
  AdmissionConfig bad_key;
  bad_key.approval_keys_pem = {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"};
  auto k = Admission::Create(bad_key);
  EXPECT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("approval_keys entry 1"), std::string::npos);
}

}  // namespace
}  // namespace sextant::agent
