#!/usr/bin/env bash
# Drives `tessera tokenize` (via the tokenize_cli stand-in) through stdin and
# stdout: goldens, the API's defaults (no template tokens added, special tokens
# left out of decoded text) and the flags that turn them on, --decode round
# trip, --help, and errors.
# Usage: tokenize_cli_test.sh TOKENIZE_CLI TEST_DATA_DIR
set -u
cli="$1"
tok="$2/tokenizers/bpe512-gpt2split/tokenizer.json"
passed=0
failed=0
check() {  # name expected actual
  if [[ "$2" == "$3" ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1: expected [$2] got [$3]"; fi
}

# Encode: like TokenizeRequest, no template tokens unless asked.
check encode-default "[42,71,460,81,14,278,261,78,70,3]" "$(printf 'Hello, world!' | "$cli" tokenize --tokenizer "$tok")"
check encode-add-special "[1,42,71,460,81,14,278,261,78,70,3]" "$(printf 'Hello, world!' | "$cli" tokenize --tokenizer="$tok" --add-special-tokens)"
check empty "[]" "$(printf '' | "$cli" tokenize --tokenizer "$tok")"
check empty-add-special "[1]" "$(printf '' | "$cli" tokenize --tokenizer "$tok" --add-special-tokens)"
# Decode: like DetokenizeRequest, special tokens left out unless asked.
check decode-default "Hello, world!" "$(printf '[1,42,71,460,81,14,278,261,78,70,3]' | "$cli" tokenize --tokenizer "$tok" --decode)"
check decode-keep-special "<|bos|>Hello, world!" "$(printf '[1,42,71,460,81,14,278,261,78,70,3]' | "$cli" tokenize --tokenizer "$tok" --decode --keep-special-tokens)"
check decode-short-default "Hi" "$(printf '[1,42,75]' | "$cli" tokenize --tokenizer "$tok" --decode)"
check decode-short-keep "<|bos|>Hi" "$(printf '[1,42,75]' | "$cli" tokenize --tokenizer "$tok" --decode --keep-special-tokens)"
text=$'emoji 🙂 数字\n\ttab <|eos|>'
ids="$(printf '%s' "$text" | "$cli" tokenize --tokenizer "$tok")"
check round-trip "$text" "$(printf '%s' "$ids" | "$cli" tokenize --tokenizer "$tok" --decode --keep-special-tokens)"
check round-trip-default-drops-special "${text%<|eos|>}" "$(printf '%s' "$ids" | "$cli" tokenize --tokenizer "$tok" --decode)"

"$cli" tokenize --help | grep -q -- "--add-special-tokens"; check help 0 $?
"$cli" tokenize --help | grep -q -- "--keep-special-tokens"; check help-keep 0 $?
"$cli" tokenize --help >/dev/null; check help-exit 0 $?
printf 'x' | "$cli" tokenize >/dev/null 2>&1; check missing-tokenizer-exit 2 $?
printf 'x' | "$cli" tokenize --tokenizer /nonexistent.json 2>/dev/null; check missing-file-exit 1 $?
err="$(printf 'x' | "$cli" tokenize --tokenizer /nonexistent.json 2>&1 >/dev/null)"
[[ "$err" == *"cannot open tokenizer file"* ]]; check missing-file-message 0 $?
printf '\xff' | "$cli" tokenize --tokenizer "$tok" >/dev/null 2>&1; check invalid-utf8-exit 1 $?
printf '[1, "x"]' | "$cli" tokenize --tokenizer "$tok" --decode >/dev/null 2>&1; check bad-ids-exit 1 $?
printf '[99999]' | "$cli" tokenize --tokenizer "$tok" --decode >/dev/null 2>&1; check unknown-id-exit 1 $?
printf 'x' | "$cli" tokenize --tokenizer "$tok" --bogus >/dev/null 2>&1; check unknown-flag-exit 2 $?
# The old double-duty flag is gone (its encode meaning is now the default).
printf 'x' | "$cli" tokenize --tokenizer "$tok" --no-special >/dev/null 2>&1; check no-special-gone-exit 2 $?
printf '[1]' | "$cli" tokenize --tokenizer "$tok" --decode --add-special-tokens >/dev/null 2>&1; check add-special-with-decode-exit 2 $?
printf 'x' | "$cli" tokenize --tokenizer "$tok" --keep-special-tokens >/dev/null 2>&1; check keep-special-without-decode-exit 2 $?

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
