#!/usr/bin/env bash
# The newcomer's main job: install, build, check the bundled model against its
# Hugging Face reference, then start a local cluster (a coordinator and 3
# worker processes on 127.0.0.1) and answer a long-document request whose
# prompt is split across the workers. The document (README.md followed by
# deploy/README.md unless DOCUMENT names another) is counted with the same
# tokenizer and defaults as the server's before it is sent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh

BIN=./build/tools/tessera
MODEL=${MODEL:-tests/data/hf-tiny/bamba-tiny}
TOKENIZER=${TOKENIZER:-tests/data/tokenizers/bpe512-gpt2split/tokenizer.json}
WORKERS=${WORKERS:-3}
PORT=${PORT:-50551}
DOCUMENT=${DOCUMENT:-}  # a text file; default: this README and deploy/README.md
WORK=$(mktemp -d)
trap 'kill -INT "${LOCAL_PID:-}" 2>/dev/null || true; wait "${LOCAL_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "== 1. the engine against transformers' reference logits"
"$BIN" eval --model "$MODEL"

echo "== 2. a local cluster: coordinator + $WORKERS workers"
"$BIN" local --workers "$WORKERS" --model "$MODEL" --tokenizer "$TOKENIZER" --port "$PORT" > "$WORK/local.log" 2>&1 &
LOCAL_PID=$!
for _ in $(seq 1 600); do
  grep -q "workers ready" "$WORK/local.log" 2>/dev/null && break
  kill -0 "$LOCAL_PID" 2>/dev/null || { cat "$WORK/local.log"; exit 1; }
  sleep 0.1
done
grep "workers ready" "$WORK/local.log" || { cat "$WORK/local.log"; exit 1; }

echo "== 3. a long document, split across the workers"
if [ -z "$DOCUMENT" ]; then
  DOCUMENT="$WORK/document.txt"
  cat README.md deploy/README.md > "$DOCUMENT"
fi
# `tokenize` and the server share their defaults (no special tokens added), so
# this is the prompt's length as sent; the summary's "usage: prompt" repeats it.
IDS=$("$BIN" tokenize --tokenizer "$TOKENIZER" < "$DOCUMENT")
TOKENS=$(printf '%s' "$IDS" | tr -d '[]\n' | tr ',' '\n' | grep -c . || true)
echo "document: $DOCUMENT ($(wc -c < "$DOCUMENT") bytes, $TOKENS tokens)"
"$BIN" generate --server "127.0.0.1:$PORT" --prompt-file "$DOCUMENT" --max-new-tokens 48
echo
