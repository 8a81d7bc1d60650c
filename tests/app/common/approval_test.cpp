// Customer approvals: only the customer's key makes one, for exactly one spec digest; altered,
// foreign-key, expired or non-canonical approvals do not verify, and a signature made for
// anything else (a validation report) never passes as an approval.
#include "app/common/approval.h"

#include <gtest/gtest.h>

namespace sextant::approval {
namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');

TEST(Approval, SignsAndVerifiesOneSpecDigest) {
  auto key = report::SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  Approval a;
  a.spec_digest = std::string(64, 'A');  // bare and uppercase: normalized
  a.approved_by = "security@example.com";
  a.approved_at = "2026-01-02T03:04:05Z";
  auto s = SignApproval(a, *key);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto back = SignedApprovalFromJson(SignedApprovalToJson(*s));
  ASSERT_TRUE(back.ok());
  auto v = VerifyApproval(*back, key->public_key());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->spec_digest, kDigest);
  EXPECT_EQ(v->approved_by, "security@example.com");
  EXPECT_FALSE(Expired(*v, 1800000000));
}

TEST(Approval, AlteredForeignOrExpiredApprovalsDoNotPass) {
  auto key = report::SigningKey::Generate();
  auto other = report::SigningKey::Generate();
  ASSERT_TRUE(key.ok() && other.ok());
  Approval a;
  a.spec_digest = kDigest;
  a.expires_at = "2026-01-01T00:00:00Z";
  auto s = SignApproval(a, *key);
  ASSERT_TRUE(s.ok());
  // Another digest under the same signature.
  SignedApproval altered = *s;
  altered.approval_json.replace(altered.approval_json.find(std::string(64, 'a')), 64,
                                std::string(64, 'b'));
  EXPECT_EQ(VerifyApproval(altered, key->public_key()).status().code(),
            StatusCode::kUnauthenticated);
  // The right bytes, checked against a key the customer did not configure.
  EXPECT_EQ(VerifyApproval(*s, other->public_key()).status().code(), StatusCode::kUnauthenticated);
  // Signed by another key that claims the customer's key id.
  auto forged = SignApproval(a, *other);
  ASSERT_TRUE(forged.ok());
  forged->key_id = key->key_id();
  EXPECT_EQ(VerifyApproval(*forged, key->public_key()).status().code(),
            StatusCode::kUnauthenticated);
  // Expiry.
  auto v = VerifyApproval(*s, key->public_key());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(Expired(*v, *ParseRfc3339("2026-01-01T00:00:00Z")));
  EXPECT_FALSE(Expired(*v, *ParseRfc3339("2025-12-31T23:59:59Z")));
  // Malformed input names what is wrong.
  a.spec_digest = "sha256:xyz";
  EXPECT_EQ(SignApproval(a, *key).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SignedApprovalFromJson(nlohmann::json::parse("{\"approval\":1}")).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Approval, ASignatureMadeForAnythingElseIsNotAnApproval) {
  auto key = report::SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  Approval a;
  a.spec_digest = kDigest;
  // The approval's JSON signed without the approval prefix (as a report signature would be).
  SignedApproval s;
  s.approval_json = a.CanonicalJson();
  auto sig = key->Sign(s.approval_json);
  ASSERT_TRUE(sig.ok());
  s.signature = *sig;
  s.key_id = key->key_id();
  EXPECT_EQ(VerifyApproval(s, key->public_key()).status().code(), StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace sextant::approval
