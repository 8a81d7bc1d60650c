// `sextant run MODEL.gguf -p TEXT -n N`: generates a continuation of TEXT on the embedded engine
// and streams it to stdout as it is sampled.
// `sextant run MODEL.gguf --chat [--system TEXT] [-p TEXT] [--chat-template NAME]`: a
// conversation formatted by the model's chat template (engine/chat, the same formatting as
// validation prompts given as messages and the agent's /v1/chat/completions): with -p one reply,
// else one user turn per line of standard input ("> " on a terminal) until end of input or
// "/exit"; each reply ends at an end-of-turn token or -n tokens.
// Progress of the load and the timings go to stderr, only when stderr is a terminal, so stdout
// holds the text alone.
// Exit status: 0 ok, 1 failure (load, context overflow, a template that refuses ...), 2 usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "app/cli/verb.h"
#include "engine/chat/chat_template.h"
#include "engine/model/model.h"
#include "engine/serve/session.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant::cli {
namespace {

struct RunArgs {
  std::string model;
  std::string prompt;
  int n_predict = 128;
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  int repeat_last_n = 64;
  int64_t seed = -1;
  int threads = 0;
  int context = 0;
  std::string backend = "auto";
  bool echo = false;
  bool no_bos = false;
  bool chat = false;
  std::string system;
  std::string chat_template;
};

serve::SamplingParams Sampling(const RunArgs& args) {
  serve::SamplingParams p;
  p.temperature = args.temperature;
  p.top_k = args.top_k;
  p.top_p = args.top_p;
  p.min_p = args.min_p;
  p.repeat_penalty = args.repeat_penalty;
  p.repeat_last_n = args.repeat_last_n;
  p.seed = args.seed >= 0 ? static_cast<uint64_t>(args.seed) : std::random_device{}();
  return p;
}

// Streams the generation of `req` to stdout; returns the decoded text.
Result<std::string> Stream(serve::Session& session, const Tokenizer& tok,
                           const serve::GenerateRequest& req, serve::GenerateStats* stats_out) {
  StreamDecoder decoder(tok);
  std::string text;
  Result<serve::GenerateStats> stats = session.Generate(req, [&](int32_t id) {
    const std::string piece = decoder.Push(id);
    text += piece;
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  const std::string rest = decoder.Flush();
  text += rest;
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!stats.ok()) return stats.status();
  if (stats_out != nullptr) *stats_out = *stats;
  return text;
}

int Chat(const RunArgs& args, const std::shared_ptr<const model::Model>& m, bool tty) {
  const Tokenizer& tok = m->tokenizer();
  Result<chat::ChatFormatter> formatter =
      chat::ChatFormatter::ForModel(m->file(), tok, args.chat_template);
  if (!formatter.ok()) {
    std::fprintf(stderr, "sextant run: %s\n", formatter.status().ToString().c_str());
    return 1;
  }
  if (tty) std::fprintf(stderr, "chat template: %s\n", formatter->origin().c_str());
  serve::Session session(m, args.context);
  if (!session.status().ok()) {
    std::fprintf(stderr, "sextant run: %s\n", session.status().ToString().c_str());
    return 1;
  }
  std::vector<chat::Message> history;
  if (!args.system.empty()) history.push_back({"system", args.system});
  serve::SamplingParams sampling = Sampling(args);
  // One turn: the whole conversation formatted again, the reply streamed and kept.
  const auto turn = [&](const std::string& user) -> int {
    history.push_back({"user", user});
    Result<std::vector<int32_t>> ids = formatter->Tokenize(tok, history);
    if (!ids.ok()) {
      history.pop_back();
      std::fprintf(stderr, "sextant run: %s\n", ids.status().ToString().c_str());
      return 1;
    }
    serve::GenerateRequest req;
    req.prompt = std::move(ids).value();
    req.max_tokens = args.n_predict;
    req.sampling = sampling;
    ++sampling.seed;  // each reply its own draw, reproducible from --seed
    serve::GenerateStats stats;
    Result<std::string> reply = Stream(session, tok, req, &stats);
    if (!reply.ok()) {
      history.pop_back();
      std::fprintf(stderr, "sextant run: %s\n", reply.status().ToString().c_str());
      return 1;
    }
    history.push_back({"assistant", *reply});
    if (tty) {
      std::fprintf(stderr,
                   "[prompt %d tokens | generated %d tokens, %.1f t/s | first token %.1f ms]\n",
                   stats.prompt_tokens, stats.generated_tokens, stats.decode_tps, stats.ttft_ms);
    }
    return 0;
  };
  if (!args.prompt.empty()) return turn(args.prompt);
  const bool interactive = isatty(STDIN_FILENO) == 1;
  int status = 0;
  std::string line;
  while (true) {
    if (interactive) {
      std::fputs("> ", stderr);
      std::fflush(stderr);
    }
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit") break;
    if (line.empty()) continue;
    status = turn(line);
    if (status != 0 && !interactive) break;  // a script's turn failed: stop with its status
  }
  return status;
}

int Run(const RunArgs& args) {
  const bool tty = isatty(STDERR_FILENO) == 1;
  model::LoadOptions lo;
  lo.backend = args.backend;
  lo.threads = args.threads;
  lo.context_length = args.context;
  int last_pct = -1;
  if (tty) {
    lo.on_progress = [&last_pct](float f) {
      const int pct = static_cast<int>(f * 100.0f);
      if (pct != last_pct) {
        std::fprintf(stderr, "\rloading %3d%%", pct);
        last_pct = pct;
      }
      return true;
    };
  }
  const auto t0 = std::chrono::steady_clock::now();
  Result<std::shared_ptr<const model::Model>> loaded = model::Model::Load(args.model, lo);
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!loaded.ok()) {
    std::fprintf(stderr, "sextant run: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<const model::Model> m = std::move(loaded).value();
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (tty && !m->backend_note().empty()) {
    std::fprintf(stderr, "note: %s\n", m->backend_note().c_str());
  }

  if (args.chat) return Chat(args, m, tty);

  const Tokenizer& tok = m->tokenizer();
  serve::GenerateRequest req;
  req.prompt = tok.Encode(args.prompt, !args.no_bos && tok.add_bos());
  if (req.prompt.empty()) {
    std::fprintf(stderr, "sextant run: the prompt is empty; give some text with -p\n");
    return 2;
  }
  req.max_tokens = args.n_predict;
  req.sampling = Sampling(args);

  serve::Session session(m, args.context);
  if (!session.status().ok()) {
    std::fprintf(stderr, "sextant run: %s\n", session.status().ToString().c_str());
    return 1;
  }
  if (args.echo) {
    std::fwrite(args.prompt.data(), 1, args.prompt.size(), stdout);
    std::fflush(stdout);
  }
  serve::GenerateStats stats;
  Result<std::string> text = Stream(session, tok, req, &stats);
  if (!text.ok()) {
    std::fprintf(stderr, "sextant run: %s\n", text.status().ToString().c_str());
    return 1;
  }
  if (tty) {
    std::fprintf(stderr,
                 "load %.0f ms | prompt %d tokens, %.1f t/s | generated %d tokens, %.1f t/s | "
                 "first token %.1f ms | %s\n",
                 load_ms, stats.prompt_tokens, stats.prefill_tps, stats.generated_tokens,
                 stats.decode_tps, stats.ttft_ms, m->backend_device().c_str());
  }
  return 0;
}

void SetupRun(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = root.add_subcommand("run", "Generate a continuation of a prompt with a model");
  cmd->add_option("MODEL", args->model, "GGUF model file")->required();
  cmd->add_option("-p,--prompt", args->prompt,
                  "Prompt text (with --chat: the user's message; without -p, one per input line)");
  cmd->add_option("-n,--n-predict", args->n_predict, "Tokens to generate (default 128)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temp", args->temperature, "Temperature; 0 = greedy (default 0.8)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", args->top_k, "Top-k; 0 = off (default 40)");
  cmd->add_option("--top-p", args->top_p, "Top-p (nucleus); 1 = off (default 0.95)");
  cmd->add_option("--min-p", args->min_p, "Min-p; 0 = off (default 0.05)");
  cmd->add_option("--repeat-penalty", args->repeat_penalty, "Repetition penalty; 1 = off");
  cmd->add_option("--repeat-last-n", args->repeat_last_n, "Tokens the penalty looks back at");
  cmd->add_option("--seed", args->seed, "Sampling seed (default: random)");
  cmd->add_option("-t,--threads", args->threads, "CPU threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-c,--ctx-size", args->context, "Context length (default: the model's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--backend", args->backend, "auto, cpu, cuda or hip (default auto)");
  cmd->add_flag("--echo", args->echo, "Print the prompt before the continuation");
  cmd->add_flag("--no-bos", args->no_bos, "Do not put BOS before the prompt");
  cmd->add_flag("--chat", args->chat,
                "Chat: format the conversation with the model's chat template and reply");
  cmd->add_option("--system", args->system, "With --chat: a system message first");
  cmd->add_option("--chat-template", args->chat_template,
                  "With --chat: a built-in template instead of the model's own (" +
                      chat::BuiltinTemplateList() + ")");
  cmd->callback([args, &ctx] {
    if (!args->chat && args->prompt.empty()) {
      std::fprintf(stderr, "sextant run: give a prompt with -p (or use --chat)\n");
      ctx.exit_code = 2;
      return;
    }
    if (!args->chat && (!args->system.empty() || !args->chat_template.empty())) {
      std::fprintf(stderr, "sextant run: --system and --chat-template need --chat\n");
      ctx.exit_code = 2;
      return;
    }
    ctx.exit_code = Run(*args);
  });
}

}  // namespace

SEXTANT_REGISTER_VERB(run, SetupRun);

}  // namespace sextant::cli
