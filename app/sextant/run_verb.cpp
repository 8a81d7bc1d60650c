// `sextant run MODEL.gguf -p TEXT -n N`: generates a continuation of TEXT on the embedded engine
// and streams it to stdout as it is sampled. Progress of the load and the timings go to stderr,
// only when stderr is a terminal, so stdout holds the text alone.
// Exit status: 0 ok, 1 failure (load, context overflow ...), 2 usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include "app/cli/verb.h"
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
};

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

  const Tokenizer& tok = m->tokenizer();
  serve::GenerateRequest req;
  req.prompt = tok.Encode(args.prompt, !args.no_bos && tok.add_bos());
  if (req.prompt.empty()) {
    std::fprintf(stderr, "sextant run: the prompt is empty; give some text with -p\n");
    return 2;
  }
  req.max_tokens = args.n_predict;
  req.sampling.temperature = args.temperature;
  req.sampling.top_k = args.top_k;
  req.sampling.top_p = args.top_p;
  req.sampling.min_p = args.min_p;
  req.sampling.repeat_penalty = args.repeat_penalty;
  req.sampling.repeat_last_n = args.repeat_last_n;
  req.sampling.seed = args.seed >= 0 ? static_cast<uint64_t>(args.seed) : std::random_device{}();

  serve::Session session(m, args.context);
  if (!session.status().ok()) {
    std::fprintf(stderr, "sextant run: %s\n", session.status().ToString().c_str());
    return 1;
  }
  if (args.echo) {
    std::fwrite(args.prompt.data(), 1, args.prompt.size(), stdout);
    std::fflush(stdout);
  }
  StreamDecoder decoder(tok);
  Result<serve::GenerateStats> stats = session.Generate(req, [&](int32_t id) {
    const std::string text = decoder.Push(id);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  const std::string rest = decoder.Flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!stats.ok()) {
    std::fprintf(stderr, "sextant run: %s\n", stats.status().ToString().c_str());
    return 1;
  }
  if (tty) {
    std::fprintf(stderr,
                 "load %.0f ms | prompt %d tokens, %.1f t/s | generated %d tokens, %.1f t/s | "
                 "first token %.1f ms | %s\n",
                 load_ms, stats->prompt_tokens, stats->prefill_tps, stats->generated_tokens,
                 stats->decode_tps, stats->ttft_ms, m->backend_device().c_str());
  }
  return 0;
}

void SetupRun(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = root.add_subcommand("run", "Generate a continuation of a prompt with a model");
  cmd->add_option("MODEL", args->model, "GGUF model file")->required();
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text")->required();
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
  cmd->callback([args, &ctx] { ctx.exit_code = Run(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(run, SetupRun);

}  // namespace sextant::cli
