#!/usr/bin/env node
// The reference token ids for the tokenizer tests: Hugging Face's tokenizer.json run by
// @lenml/tokenizers (a fork of transformers.js), installed by scripts/tokenizer-testdata.sh.
//   node scripts/tokenizer-reference.mjs NPM_DIR PACKAGE INPUT [FAMILY]
// INPUT holds the test strings separated by lines "__sextant_case__"; the output has one line of
// space-separated ids per string (no BOS/EOS; added and special tokens in the text are matched,
// as Hugging Face does). With FAMILY, the package's vocabulary is used with that family's
// pre-tokenizer (as its tokenizer.json spells it) instead of its own, for the families no
// package ships.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const [npmDir, pkg, input, family] = process.argv.slice(2);
if (!npmDir || !pkg || !input) {
  console.error("usage: tokenizer-reference.mjs NPM_DIR PACKAGE INPUT [FAMILY]");
  process.exit(2);
}
const require = createRequire(path.resolve(npmDir, "node_modules") + "/");
const { TokenizerLoader } = require("@lenml/tokenizers");
const models = path.resolve(npmDir, "node_modules", pkg, "models");
const tokenizerJSON = JSON.parse(readFileSync(path.join(models, "tokenizer.json"), "utf8"));
const tokenizerConfig = JSON.parse(readFileSync(path.join(models, "tokenizer_config.json"), "utf8"));

const gpt2 = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
const split = (r) => ({ type: "Split", pattern: { Regex: r }, behavior: "Isolated", invert: false });
const byteLevelNoRegex = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false };
const cjk = "[一-龥ࠀ-一가-퟿]+";
// Hugging Face's Digits splits at char::is_numeric (\p{N}); transformers.js's at ASCII \d only, so
// Digits is spelled as the Split it is.
const digits = (individual) => split(individual ? "\\p{N}" : "\\p{N}+");
const families = {
  "gpt-2": gpt2,
  "gpt-neox": gpt2,
  mpt: gpt2,
  starcoder: { type: "Sequence", pretokenizers: [digits(true), gpt2] },
  refact: { type: "Sequence", pretokenizers: [digits(true), gpt2] },
  falcon: {
    type: "Sequence",
    pretokenizers: [
      { type: "Punctuation", behavior: "Contiguous" },
      gpt2,
      digits(false),
      split("[0-9][0-9][0-9]"),
    ],
  },
  "deepseek-llm": {
    type: "Sequence",
    pretokenizers: [
      split("[\r\n]"),
      split(
        "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-" +
          "ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-" +
          "ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      ),
      split("\\s?[!-/:-~！-／：-～‘-‟　-。]+"),
      split("\\s+$"),
      split(cjk),
      split("\\p{N}+"),
      byteLevelNoRegex,
    ],
  },
  "deepseek-coder": {
    type: "Sequence",
    pretokenizers: [
      split("[\r\n]"),
      split("\\s?\\p{L}+"),
      split("\\s?\\p{P}+"),
      split(cjk),
      digits(true),
      byteLevelNoRegex,
    ],
  },
};
if (family) {
  if (!families[family]) {
    console.error(`unknown family ${family}`);
    process.exit(2);
  }
  tokenizerJSON.pre_tokenizer = families[family];
  tokenizerJSON.model.ignore_merges = false;
  tokenizerJSON.normalizer = null;
}
const tokenizer = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const cases = readFileSync(input, "utf8").split("\n__sextant_case__\n");
const out = cases.map((s) => tokenizer.encode(s, { add_special_tokens: false }).join(" "));
process.stdout.write(out.join("\n") + "\n");
