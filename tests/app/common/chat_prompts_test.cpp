// Validation prompts given as conversations and engine.chatTemplate: strict parsing, the
// canonical form (so the spec digest covers every message), and the diff that names a message.
#include <gtest/gtest.h>

#include <string>

#include "app/common/deployment_spec.h"
#include "app/common/spec_diff.h"

namespace sextant::spec {
namespace {

constexpr char kSha[] = "047bf46455a544931cff6fef14d7910154c56afbc23ab1c5e56a72e69912c04b";

std::string Spec(const std::string& engine, const std::string& prompts) {
  return std::string(
             "apiVersion: sextant/v1\nkind: Deployment\nname: chat\nmodel:\n"
             "  uri: file://m.gguf\n  sha256: ") +
         kSha + "\n" + engine + "validation:\n  prompts:\n" + prompts;
}

const char kConversation[] = R"(    - Once upon a time
    - messages:
        - {role: system, content: "You are terse."}
        - role: user
          content: |
            What is 2+2?
        - {role: assistant, content: "4"}
        - {role: user, content: "And 3+3?"}
)";

std::vector<SpecError> Errors(const std::string& text) { return ParseDeploymentSpec(text).errors; }

std::string AllErrors(const std::vector<SpecError>& errors) {
  std::string all;
  for (const auto& e : errors) all += e.ToString() + "\n";
  return all;
}

TEST(ChatPrompts, ParseTextAndConversationPrompts) {
  SpecParseResult r = ParseDeploymentSpec(Spec("engine:\n  chatTemplate: llama3\n", kConversation));
  ASSERT_TRUE(r.ok()) << AllErrors(r.errors);
  EXPECT_EQ(r.spec.engine.chat_template, "llama3");
  ASSERT_EQ(r.spec.validation.prompts.size(), 2u);
  EXPECT_FALSE(r.spec.validation.prompts[0].is_conversation());
  EXPECT_EQ(r.spec.validation.prompts[0], "Once upon a time");
  const ValidationPrompt& c = r.spec.validation.prompts[1];
  ASSERT_TRUE(c.is_conversation());
  EXPECT_EQ(c.messages, (std::vector<chat::Message>{{"system", "You are terse."},
                                                    {"user", "What is 2+2?\n"},
                                                    {"assistant", "4"},
                                                    {"user", "And 3+3?"}}));
}

TEST(ChatPrompts, TheCanonicalFormHoldsEveryMessageAndReparses) {
  SpecParseResult r = ParseDeploymentSpec(Spec("", kConversation));
  ASSERT_TRUE(r.ok()) << AllErrors(r.errors);
  const nlohmann::json c = ToCanonicalJsonValue(r.spec);
  EXPECT_EQ(c["engine"]["chatTemplate"], "");
  EXPECT_EQ(c["validation"]["prompts"][0], "Once upon a time");
  EXPECT_EQ(c["validation"]["prompts"][1]["messages"][1]["role"], "user");
  EXPECT_EQ(c["validation"]["prompts"][1]["messages"][1]["content"], "What is 2+2?\n");
  const std::string json = CanonicalJson(r.spec);
  SpecParseResult again = ParseDeploymentSpec(json);
  ASSERT_TRUE(again.ok()) << AllErrors(again.errors);
  EXPECT_EQ(CanonicalJson(again.spec), json);
  EXPECT_EQ(again.spec.validation.prompts, r.spec.validation.prompts);
}

TEST(ChatPrompts, TheDigestCoversEveryMessageAndTheTemplate) {
  const std::string base = SpecDigest(ParseDeploymentSpec(Spec("", kConversation)).spec);
  std::string changed = kConversation;
  changed.replace(changed.find("And 3+3?"), 8, "And 3+4?");
  EXPECT_NE(SpecDigest(ParseDeploymentSpec(Spec("", changed)).spec), base);
  std::string role = kConversation;
  role.replace(role.find("role: system"), 12, "role: user  ");
  EXPECT_NE(SpecDigest(ParseDeploymentSpec(Spec("", role)).spec), base);
  EXPECT_NE(SpecDigest(
                ParseDeploymentSpec(Spec("engine:\n  chatTemplate: chatml\n", kConversation)).spec),
            base);
  // Writing the default explicitly changes nothing.
  EXPECT_EQ(
      SpecDigest(ParseDeploymentSpec(Spec("engine:\n  chatTemplate: \"\"\n", kConversation)).spec),
      base);
  // The diff names the message that changed.
  const auto diff = DiffSpecs(ParseDeploymentSpec(Spec("", kConversation)).spec,
                              ParseDeploymentSpec(Spec("", changed)).spec);
  ASSERT_EQ(diff.size(), 1u);
  EXPECT_EQ(diff[0].field, "validation.prompts[1].messages[3].content");
}

TEST(ChatPrompts, MalformedConversationsAreRefusedNamingTheField) {
  struct Case {
    std::string prompts;
    std::string field;
    std::string message;
  };
  const Case cases[] = {
      {"    - messages: []\n", "validation.prompts[0].messages", "at least one"},
      {"    - messages: {role: user}\n", "validation.prompts[0].messages", "at least one"},
      {"    - {messages: [{role: user, content: hi}], extra: 1}\n", "validation.prompts[0].extra",
       "unknown field"},
      {"    - messages: [{role: robot, content: hi}]\n", "validation.prompts[0].messages[0].role",
       "expected one of system, user, assistant"},
      {"    - messages: [{role: user}]\n", "validation.prompts[0].messages[0].content",
       "required field is missing"},
      {"    - messages: [{role: user, content: [a]}]\n",
       "validation.prompts[0].messages[0].content", "expected a string"},
      {"    - messages: [{role: system, content: hi}]\n", "validation.prompts[0].messages",
       "at least one user message"},
      {"    - {}\n", "validation.prompts[0].messages", "required field is missing"},
      {"    - [a, b]\n", "validation.prompts[0]", "expected a string"},
      {"    - messages: [{role: user, content: \"" + std::string(70000, 'x') + "\"}]\n",
       "validation.prompts[0].messages", "at most 64 KiB"},
  };
  for (const Case& c : cases) {
    const std::vector<SpecError> errors = Errors(Spec("", c.prompts));
    ASSERT_EQ(errors.size(), 1u) << c.prompts.substr(0, 80) << "\n" << AllErrors(errors);
    EXPECT_EQ(errors[0].field, c.field) << c.prompts.substr(0, 80);
    EXPECT_NE(errors[0].message.find(c.message), std::string::npos) << errors[0].message;
    EXPECT_GT(errors[0].line, 0) << c.prompts.substr(0, 80);
  }
  const std::vector<SpecError> bad =
      Errors(Spec("engine:\n  chatTemplate: vicuna\n", "    - hi\n"));
  ASSERT_EQ(bad.size(), 1u) << AllErrors(bad);
  EXPECT_EQ(bad[0].field, "engine.chatTemplate");
  EXPECT_NE(bad[0].message.find("chatml, deepseek, gemma"), std::string::npos) << bad[0].message;
}

}  // namespace
}  // namespace sextant::spec
