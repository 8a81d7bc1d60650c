// The scaling section's autoscaler fields: defaults, strict parsing, canonical form.
#include <gtest/gtest.h>

#include <string>

#include "app/common/deployment_spec.h"

namespace sextant::spec {
namespace {

std::string Spec(const std::string& scaling) {
  return R"(apiVersion: sextant/v1
kind: Deployment
name: stories
model:
  uri: file://stories260K.gguf
  sha256: 047bf46455a544931cff6fef14d7910154c56afbc23ab1c5e56a72e69912c04b
validation:
  prompts:
    - Once upon a time
)" + scaling;
}

TEST(DeploymentSpecScaling, DefaultsAreExplicitInTheCanonicalForm) {
  SpecParseResult r = ParseDeploymentSpec(Spec(""));
  ASSERT_TRUE(r.ok()) << r.errors.front().ToString();
  const Scaling& s = r.spec.scaling;
  EXPECT_EQ(s.target_in_flight, 0);
  EXPECT_EQ(s.scale_up_window_seconds, 5);
  EXPECT_EQ(s.scale_down_window_seconds, 300);
  EXPECT_EQ(s.queue_timeout_seconds, 30);
  EXPECT_EQ(s.max_queue, 64);
  const nlohmann::json c = ToCanonicalJsonValue(r.spec)["scaling"];
  EXPECT_EQ(c.dump(),
            R"({"maxQueue":64,"queueTimeout":30,"scaleDownWindow":300,"scaleToZeroAfter":0,)"
            R"("scaleUpWindow":5,"targetInFlight":0,"targetQueueDepth":4})");
  // Writing the defaults out gives the same digest as leaving them out.
  SpecParseResult explicit_defaults = ParseDeploymentSpec(
      Spec("scaling:\n  targetInFlight: 0\n  scaleUpWindow: 5s\n  scaleDownWindow: 5m\n"
           "  queueTimeout: 30\n  maxQueue: 64\n"));
  ASSERT_TRUE(explicit_defaults.ok()) << explicit_defaults.errors.front().ToString();
  EXPECT_EQ(SpecDigest(explicit_defaults.spec), SpecDigest(r.spec));
}

TEST(DeploymentSpecScaling, ValuesParseAndChangeTheDigest) {
  SpecParseResult r = ParseDeploymentSpec(
      Spec("scaling:\n  targetInFlight: 6\n  scaleUpWindow: 15s\n  scaleDownWindow: 10m\n"
           "  queueTimeout: 2m\n  maxQueue: 0\n"));
  ASSERT_TRUE(r.ok()) << r.errors.front().ToString();
  EXPECT_EQ(r.spec.scaling.target_in_flight, 6);
  EXPECT_EQ(r.spec.scaling.scale_up_window_seconds, 15);
  EXPECT_EQ(r.spec.scaling.scale_down_window_seconds, 600);
  EXPECT_EQ(r.spec.scaling.queue_timeout_seconds, 120);
  EXPECT_EQ(r.spec.scaling.max_queue, 0);
  // The canonical JSON reads back to the same spec.
  SpecParseResult again = ParseDeploymentSpec(CanonicalJson(r.spec));
  ASSERT_TRUE(again.ok()) << again.errors.front().ToString();
  EXPECT_EQ(SpecDigest(again.spec), SpecDigest(r.spec));
  EXPECT_NE(SpecDigest(r.spec), SpecDigest(ParseDeploymentSpec(Spec("")).spec));
  for (const char* change : {"scaleUpWindow: 16s", "scaleDownWindow: 11m", "queueTimeout: 3m",
                             "maxQueue: 1", "targetInFlight: 7"}) {
    SpecParseResult other = ParseDeploymentSpec(Spec(std::string("scaling:\n  ") + change + "\n"));
    ASSERT_TRUE(other.ok()) << change;
    EXPECT_NE(SpecDigest(other.spec), SpecDigest(ParseDeploymentSpec(Spec("")).spec)) << change;
  }
}

TEST(DeploymentSpecScaling, BadValuesNameTheField) {
  struct Case {
    std::string text;
    std::string field;
    std::string message;
  };
  const Case cases[] = {
      {"scaling:\n  scaleUpWindow: fast\n", "scaling.scaleUpWindow", "expected a duration"},
      {"scaling:\n  scaleDownWindow: -5\n", "scaling.scaleDownWindow", "expected a duration"},
      {"scaling:\n  queueTimeout: 0\n", "scaling.queueTimeout", "at least 1s"},
      {"scaling:\n  queueTimeout: 0s\n", "scaling.queueTimeout", "at least 1s"},
      {"scaling:\n  maxQueue: -1\n", "scaling.maxQueue", ""},
      {"scaling:\n  maxQueue: \"8\"\n", "scaling.maxQueue", ""},
      {"scaling:\n  targetInFlight: 100001\n", "scaling.targetInFlight", ""},
      {"scaling:\n  scaleUpWindow: 400d\n", "scaling.scaleUpWindow", ""},
      {"scaling:\n  scaleDownWindows: 5m\n", "scaling.scaleDownWindows", "unknown field"},
  };
  for (const Case& c : cases) {
    SpecParseResult r = ParseDeploymentSpec(Spec(c.text));
    ASSERT_EQ(r.errors.size(), 1u) << c.text;
    EXPECT_EQ(r.errors[0].field, c.field) << c.text;
    EXPECT_EQ(r.errors[0].line, 11) << c.text;
    EXPECT_NE(r.errors[0].message.find(c.message), std::string::npos) << r.errors[0].message;
  }
}

}  // namespace
}  // namespace sextant::spec
