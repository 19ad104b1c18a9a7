#!/usr/bin/env bash
# Proves that readme_commands_test.sh can fail: runs it with a stand-in
# `tessera` (fake_tessera.sh) against small READMEs, one per way a README can
# break, and checks its exit status and message; and that a good README
# passes with every command run once, in order, continuations joined, output
# blocks and GPU lines left alone. Needs no port, no model, no cluster.
# Usage: readme_commands_selftest.sh RUNNER FAKE_TESSERA
set -u
runner=$(readlink -f "$1")
work=$(mktemp -d "${TMPDIR:-/tmp}/readme-selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$2" "$work/tessera" && chmod +x "$work/tessera"
mkdir -p "$work/repo"
export FAKE_TESSERA_LOG="$work/calls.log"
passed=0
failed=0

# case NAME EXPECTED_EXIT EXPECTED_TEXT < README
case_() {
  local name=$1 expected_exit=$2 expected_text=$3 output rc
  cat > "$work/$name.md"
  : > "$FAKE_TESSERA_LOG"
  output=$(README_READY_TIMEOUT_S=3 README_COMMAND_TIMEOUT_S=10 bash "$runner" "$work/tessera" "$work/repo" "$work/$name.md" 2>&1)
  rc=$?
  if [[ $rc -eq $expected_exit && "$output" == *"$expected_text"* ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $name: expected exit $expected_exit and [$expected_text]; got exit $rc:"
    echo "$output" | sed 's/^/    /'
  fi
}

case_ good 0 "PASS: ran 4 commands" <<'EOF'
# A README

Prose with `./build/tools/tessera fail` inline: not a command.

```sh
./build/tools/tessera local --workers 1 --model m \
    --port 0
# another terminal:
./build/tools/tessera generate --server 127.0.0.1:0 --prompt-ids "1,2"
```

```text
./build/tools/tessera fail   (output, never run)
```

    ./build/tools/tessera generate --backend cuda --server x
    ./build/tools/tessera generate --server 127.0.0.1:0 --prompt "indented"

```bash
bash scripts/test.sh
printf 'a|b' | ./build/tools/tessera generate --server 127.0.0.1:0 --prompt-file /dev/stdin
```
EOF
expected_calls='local --workers 1 --model m --port 0
generate --server 127.0.0.1:0 --prompt-ids 1,2
generate --server 127.0.0.1:0 --prompt indented
generate --server 127.0.0.1:0 --prompt-file /dev/stdin'
if [[ "$(cat "$FAKE_TESSERA_LOG")" == "$expected_calls" ]]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL good-calls: expected [$expected_calls] got [$(cat "$FAKE_TESSERA_LOG")]"
fi

case_ no-blocks 1 "no commands extracted" <<'EOF'
# A README whose commands are inline only: `./build/tools/tessera local`.
EOF

case_ failing-command 1 "exited with status 3: ./build/tools/tessera fail" <<'EOF'
```sh
./build/tools/tessera local --workers 1 --model m --port 0
./build/tools/tessera fail
./build/tools/tessera generate --server 127.0.0.1:0
```
EOF

case_ failing-pipeline 1 "exited with status 3" <<'EOF'
```sh
./build/tools/tessera fail | cat
```
EOF

case_ unclosed-fence 1 "never closed" <<'EOF'
```sh
./build/tools/tessera local --workers 1 --model m --port 0
./build/tools/tessera generate --server 127.0.0.1:0
EOF

case_ only-output-blocks 1 "no commands extracted" <<'EOF'
```text
./build/tools/tessera local --workers 1 --model m --port 0
```
EOF

case_ all-skipped 1 "every extracted command was skipped" <<'EOF'
```sh
bash scripts/run-demo.sh
./build/tools/tessera eval --backend cuda
```
EOF

case_ no-cluster 1 "expected both" <<'EOF'
```sh
./build/tools/tessera generate --server 127.0.0.1:0
```
EOF

case_ local-exits 1 "exited with status 1 before its workers were ready" <<'EOF'
```sh
./build/tools/tessera local --fake-exit --port 0
./build/tools/tessera generate --server 127.0.0.1:0
```
EOF

case_ local-never-ready 1 "no 'workers ready' line within 3 s" <<'EOF'
```sh
./build/tools/tessera local --fake-never-ready --port 0
./build/tools/tessera generate --server 127.0.0.1:0
```
EOF

case_ two-clusters 0 "2 local clusters" <<'EOF'
```sh
./build/tools/tessera local --workers 1 --port 0
./build/tools/tessera generate --server 127.0.0.1:0
./build/tools/tessera local --workers 2 --port 0
./build/tools/tessera generate --server 127.0.0.1:0
```
EOF

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
