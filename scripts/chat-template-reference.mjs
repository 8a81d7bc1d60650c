#!/usr/bin/env node
// The reference renderings for the chat-template tests: @huggingface/jinja, the Jinja interpreter
// transformers.js runs chat templates with (installed by scripts/tokenizer-testdata.sh), renders
// each case as apply_chat_template does; with a package, its tokenizer (@lenml/tokenizers, a fork
// of transformers.js) also gives the token ids of that text, without adding special tokens, as
// apply_chat_template(tokenize=true) does.
//   node scripts/chat-template-reference.mjs NPM_DIR INPUT [PACKAGE]
// INPUT is a JSON array of {template, messages, add_generation_prompt, bos_token, eos_token,
// enable_thinking?}; the output has one line per case: "text HEX" (the rendering's UTF-8 bytes in
// hex) followed, with a package, by "ids N N ...", or "error MESSAGE" when the template refused.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const [npmDir, input, pkg] = process.argv.slice(2);
if (!npmDir || !input) {
  console.error("usage: chat-template-reference.mjs NPM_DIR INPUT [PACKAGE]");
  process.exit(2);
}
const require = createRequire(path.resolve(npmDir, "node_modules") + "/");
const { Template, Environment } = require("@huggingface/jinja");
// The engine leaves strftime_now undefined so that a rendering depends on its inputs alone
// (templates fall back to their fixed date); the reference is run the same way.
const declare = Environment.prototype.set;
Environment.prototype.set = function (name, value) {
  return name === "strftime_now" ? undefined : declare.call(this, name, value);
};

let tokenizer = null;
if (pkg) {
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const models = path.resolve(npmDir, "node_modules", pkg, "models");
  tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(readFileSync(path.join(models, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(readFileSync(path.join(models, "tokenizer_config.json"), "utf8")),
  });
}

const cases = JSON.parse(readFileSync(input, "utf8"));
const lines = cases.map((c) => {
  let text;
  try {
    const vars = {
      messages: c.messages,
      add_generation_prompt: c.add_generation_prompt,
      bos_token: c.bos_token,
      eos_token: c.eos_token,
    };
    if (c.enable_thinking !== undefined) vars.enable_thinking = c.enable_thinking;
    text = new Template(c.template).render(vars);
  } catch (e) {
    return "error " + String(e && e.message ? e.message : e).replace(/\n/g, " ");
  }
  let line = "text " + Buffer.from(text, "utf8").toString("hex");
  if (tokenizer) line += "\nids " + tokenizer.encode(text, { add_special_tokens: false }).join(" ");
  return line;
});
process.stdout.write(lines.join("\n") + "\n");
