// `sextant run --chat` as a user runs it: one reply with -p, one per line of standard input
// otherwise, each the engine's greedy reply to the conversation formatted by the chat template
// (the formatting validation and /v1/chat/completions use); and its usage errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/chat/chat_template.h"
#include "engine/gguf/synth.h"
#include "engine/model/model.h"
#include "engine/serve/session.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/support/command.h"

namespace sextant {
namespace {

namespace fs = std::filesystem;
using testing::RunCommand;

class RunChatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sextant_run_chat_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    model_path_ = dir_ / "tiny.gguf";
    ASSERT_TRUE(gguf::SynthesizeLlama(*gguf::LlamaShapeByName("stories260k-like"),
                                      gguf::SynthType::kF32, 3, model_path_, {}, 1)
                    .ok());
    model::LoadOptions load;
    load.backend = "cpu";
    load.threads = 1;
    auto m = model::Model::Load(model_path_, load);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = *m;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The greedy reply of `n` tokens to `conversation` formatted by `tmpl` ("" the model's own).
  std::string Reply(const std::vector<chat::Message>& conversation, const std::string& tmpl,
                    int n) {
    auto formatter = chat::ChatFormatter::ForModel(model_->file(), model_->tokenizer(), tmpl);
    EXPECT_TRUE(formatter.ok());
    auto ids = formatter->Tokenize(model_->tokenizer(), conversation);
    EXPECT_TRUE(ids.ok());
    serve::Session session(model_, 0);
    serve::GenerateRequest req;
    req.prompt = *ids;
    req.max_tokens = n;
    req.sampling.temperature = 0;
    StreamDecoder decoder(model_->tokenizer());
    std::string text;
    EXPECT_TRUE(session
                    .Generate(req,
                              [&](int32_t t) {
                                text += decoder.Push(t);
                                return true;
                              })
                    .ok());
    return text + decoder.Flush();
  }

  std::string Sextant() const {
    return std::string(SEXTANT_CONSOLE_BIN) + " run " + model_path_.string();
  }

  fs::path dir_, model_path_;
  std::shared_ptr<const model::Model> model_;
};

TEST_F(RunChatTest, OneReplyWithAPrompt) {
  const auto r = RunCommand(Sextant() +
                            " --chat --chat-template llama2 --system 'Be brief.' -p 'Once upon a "
                            "time' -n 8 --temp 0 -t 1 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output,
            Reply({{"system", "Be brief."}, {"user", "Once upon a time"}}, "llama2", 8) + "\n");
}

TEST_F(RunChatTest, OneTurnPerInputLineWithTheConversationSoFar) {
  const auto r = RunCommand("printf 'Once upon a time\\n\\nThe dog\\n' | " + Sextant() +
                            " --chat -n 6 --temp 0 -t 1 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The model has no chat template: the built-in plain one formats it. The empty line is skipped;
  // the second turn sees the first reply.
  const std::string first = Reply({{"user", "Once upon a time"}}, "", 6);
  const std::string second =
      Reply({{"user", "Once upon a time"}, {"assistant", first}, {"user", "The dog"}}, "", 6);
  EXPECT_EQ(r.output, first + "\n" + second + "\n");
}

TEST_F(RunChatTest, UsageErrors) {
  auto r = RunCommand(Sextant());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("-p"), std::string::npos) << r.output;
  r = RunCommand(Sextant() + " -p hi --system 'Be brief.'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("need --chat"), std::string::npos) << r.output;
  r = RunCommand(Sextant() + " --chat --chat-template vicuna -p hi");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("unknown chat template 'vicuna'"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace sextant
