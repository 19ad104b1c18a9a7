#!/usr/bin/env bash
# Runs README.md's shell commands as written, in order, the way a newcomer
# does after `bash scripts/build.sh`, so that a README drifting from the
# binary (a flag renamed, a file that does not exist, a default that changed)
# fails here instead of in front of a user.
#
# Usage: readme_commands_test.sh TESSERA_BINARY REPO_ROOT [README]
#
# Path mapping. The README's commands say `./build/tools/tessera` and name
# files relative to the repository root. They run in a fresh directory WORK:
#   WORK/build/tools/tessera  -> TESSERA_BINARY (the build under test)
#   WORK/README.md            -> README (default REPO_ROOT/README.md)
#   WORK/{tests,scripts,deploy,proto,bench} -> REPO_ROOT/...
# so `./build/tools/tessera` is the binary under test, and what a command
# writes under build/ lands in WORK, which is removed at the end.
#
# What is a command: each line of a fenced block tagged sh, bash or shell (or
# untagged), and of an indented (4-space) code block, with `\` continuations
# joined; `#` lines are comments; blocks tagged otherwise (```text) are output
# and never run. Skipped, and listed: lines that need a GPU (--backend cuda,
# make-random-model, compare --devices, gpu_check, cp_scaling_bench) and the setup scripts
# (run-demo.sh, test.sh, setup.sh: apt-get and a full build).
#
# How it runs: a `tessera local` line starts in the background (the README's
# "another terminal") after checking that its port (--port, default 50051) is
# free, and the test waits for its "workers ready" line; a later `local` line
# first stops the earlier cluster with SIGINT (the README's Ctrl-C), which
# must exit 0. Every other line runs in the foreground, from WORK, under
# bash -o pipefail and a timeout, and must exit 0. Everything binds
# 127.0.0.1 (README's commands do); every process started is stopped on any
# exit.
#
# Fails when a command fails or times out, a cluster does not get ready or
# does not stop cleanly, a port is taken, a fence is left open, nothing is
# extracted, or no `tessera local` and `tessera generate` ran (the README's
# format changed so that its main path is no longer seen).
set -uo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 TESSERA_BINARY REPO_ROOT [README]" >&2
  exit 2
fi
binary=$(readlink -f "$1")
repo=$(readlink -f "$2")
readme=$(readlink -f "${3:-$repo/README.md}")
command_timeout_s=${README_COMMAND_TIMEOUT_S:-300}
ready_timeout_s=${README_READY_TIMEOUT_S:-120}
stop_timeout_s=20
# Inside ctest's TIMEOUT, so that a slow machine fails here, with clean-up.
deadline=$((SECONDS + ${README_TOTAL_TIMEOUT_S:-1080}))
[[ -x "$binary" ]] || { echo "FAIL: $binary is not an executable" >&2; exit 1; }
[[ -r "$readme" ]] || { echo "FAIL: cannot read $readme" >&2; exit 1; }
readme_name=$(basename "$readme")

work=$(mktemp -d "${TMPDIR:-/tmp}/readme-commands.XXXXXX")
local_pid=""
local_log=""
local_children=()

# Children of a pid, from /proc (the workers and coordinator of a local).
children_of() {
  local status
  for status in /proc/[0-9]*/status; do
    if grep -q "^PPid:[[:space:]]*$1\$" "$status" 2>/dev/null; then
      status=${status#/proc/}
      echo "${status%/status}"
    fi
  done
}

# SIGINT (Ctrl-C) to the running `tessera local`, then SIGKILL after
# stop_timeout_s; children it left behind get SIGKILL too. Sets stop_status:
# its exit status, "killed" when it had to be killed, plus any child left.
stop_status=""
stop_local() {
  stop_status=""
  [[ -n "$local_pid" ]] || return 0
  local pid=$local_pid i child
  local_pid=""
  kill -INT "$pid" 2>/dev/null
  for ((i = 0; i < stop_timeout_s * 10; ++i)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    stop_status=killed
  else
    wait "$pid" 2>/dev/null
    stop_status=$?
  fi
  for child in "${local_children[@]}"; do
    for ((i = 0; i < 50; ++i)); do
      kill -0 "$child" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$child" 2>/dev/null; then
      kill -KILL "$child" 2>/dev/null
      stop_status="$stop_status, and its child $child outlived it (killed)"
    fi
  done
  local_children=()
}

cleanup() {
  if [[ -n "$local_pid" ]]; then
    stop_local
    echo "stopped the tessera local still running: $stop_status"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "FAIL: interrupted" >&2; exit 1' INT TERM HUP

fail() {
  echo "FAIL: $*" >&2
  if [[ -n "$local_log" && -s "$local_log" ]]; then
    echo "---- output of the tessera local (${local_log##*/}) ----" >&2
    tail -n 40 "$local_log" >&2
  fi
  exit 1
}

port_in_use() {  # whether something accepts connections on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# --- the commands, as "LINE<TAB>COMMAND" ---
extract_commands() {
  awk '
    function flush_continued() {
      if (pending != "") { printf "%d\t%s\n", pending_line, pending; pending = "" }
    }
    function take(line, number) {
      if (pending == "") {
        if (line ~ /^[ \t]*(#|$)/) return  # a comment or a blank line
        pending_line = number
      }
      if (line ~ /\\$/) {  # continued on the next line
        sub(/[ \t]*\\$/, "", line)
        pending = (pending == "" ? line : pending " " line)
        return
      }
      pending = (pending == "" ? line : pending " " line)
      flush_continued()
    }
    BEGIN { fence = ""; previous_blank = 1; in_indented = 0 }
    {
      line = $0
      if (fence != "") {
        if (line ~ ("^(   |  | )?" fence "[ \t]*$")) { flush_continued(); fence = ""; previous_blank = 1; next }
        if (shell_fence) { sub(/^[ \t]+/, "", line); take(line, NR) }
        next
      }
      if (match(line, /^(   |  | )?(```+|~~~+)/)) {
        flush_continued()
        opener = substr(line, RSTART, RLENGTH); sub(/^ +/, "", opener)
        language = substr(line, RSTART + RLENGTH); gsub(/[ \t]/, "", language); sub(/[{,].*/, "", language)
        fence = opener; fence_line = NR
        shell_fence = (language == "" || language == "sh" || language == "bash" || language == "shell")
        in_indented = 0
        next
      }
      if ((previous_blank || in_indented) && line ~ /^(    |\t)/) {
        in_indented = 1
        sub(/^(    |\t)/, "", line); sub(/^[ \t]+/, "", line)
        take(line, NR)
        previous_blank = 0
        next
      }
      if (line ~ /^[ \t]*$/) { previous_blank = 1; next }  # a blank line does not end an indented block
      flush_continued()
      in_indented = 0; previous_blank = 0
    }
    END {
      flush_continued()
      if (fence != "") { printf "a %s fence opened at line %d is never closed\n", fence, fence_line > "/dev/stderr"; exit 3 }
    }
  ' "$readme"
}

# Why a command is not run here, or nothing.
skip_reason() {
  local command=$1
  case "$command" in
    *--backend\ cuda* | *--backend=cuda*) echo "needs a GPU: --backend cuda" ;;
    *make-random-model*) echo "needs a GPU: make-random-model (Nemotron-H-8B shapes, for compare on GPUs)" ;;
    *gpu_check*) echo "needs a GPU host: gpu_check" ;;
    *cp_scaling_bench*) echo "needs a GPU: cp_scaling_bench (CUDA engines, one per GPU)" ;;
    *scripts/run-demo.sh* | *scripts/test.sh* | *scripts/setup.sh*) echo "setup script: apt-get and a full build" ;;
    *)
      if [[ "$command" =~ tessera[[:space:]]+compare([[:space:]]|$) && "$command" == *--devices* ]]; then
        echo "needs GPUs: compare --devices"
      fi
      ;;
  esac
}

commands_file="$work/commands.tsv"
extract_commands > "$commands_file"
extract_rc=$?
[[ $extract_rc -eq 0 ]] || fail "$readme_name: cannot extract its commands (awk exit $extract_rc; see above)"
[[ -s "$commands_file" ]] || fail "$readme_name: no commands extracted: no \`\`\`sh fenced or indented code block (did the block format change?)"

mkdir -p "$work/build/tools"
ln -s "$binary" "$work/build/tools/tessera"
ln -s "$readme" "$work/README.md"
for dir in tests scripts deploy proto bench; do
  [[ -e "$repo/$dir" ]] && ln -s "$repo/$dir" "$work/$dir"
done

# The demo's document as the README sizes it ("about N tokens"), against what
# scripts/run-demo.sh sends: README.md then deploy/README.md, counted with the
# demo's tokenizer and the server's defaults, within 15%.
stated=$(tr '\n' ' ' < "$readme" | tr -s ' ' | grep -o 'about [0-9][0-9,]* tokens' | head -n 1 | tr -dc '0-9')
if [[ -n "$stated" && -r "$repo/scripts/run-demo.sh" ]]; then
  demo="$repo/scripts/run-demo.sh"
  grep -q 'cat README.md deploy/README.md' "$demo" ||
    fail "scripts/run-demo.sh no longer sends README.md + deploy/README.md; update the README's size and this check"
  demo_tokenizer=$(sed -n 's/^TOKENIZER=\${TOKENIZER:-\(.*\)}$/\1/p' "$demo")
  sent=$(cat "$readme" "$repo/deploy/README.md" | "$binary" tokenize --tokenizer "$repo/$demo_tokenizer" |
         tr -d '[]\n' | tr ',' '\n' | grep -c .) || fail "cannot count the demo document's tokens"
  if ((sent * 100 < stated * 85 || sent * 100 > stated * 115)); then
    fail "$readme_name says the demo's document is about $stated tokens; run-demo.sh sends $sent"
  fi
  echo "demo document: $sent tokens (the README says about $stated)"
fi

ran=0
ran_local=0
ran_generate=0
skipped=()
while IFS=$'\t' read -r line_number command; do
  where="$readme_name:$line_number"
  reason=$(skip_reason "$command")
  if [[ -n "$reason" ]]; then
    echo "SKIP $where ($reason): $command"
    skipped+=("$where")
    continue
  fi
  ran=$((ran + 1))
  if [[ "$command" =~ ^\./build/tools/tessera[[:space:]]+local([[:space:]]|$) ]]; then
    if [[ -n "$local_pid" ]]; then
      echo "---- Ctrl-C to the cluster started earlier, as the README says"
      stop_local
      [[ "$stop_status" == 0 ]] || fail "$where: the earlier tessera local did not stop cleanly on SIGINT: $stop_status"
      grep -q "local cluster: stopped" "$local_log" || fail "$where: the earlier tessera local never said 'stopped'"
    fi
    port=50051  # local's default
    if [[ "$command" =~ --port[[:space:]=]+([0-9]+) ]]; then port=${BASH_REMATCH[1]}; fi
    if [[ "$port" != 0 ]] && port_in_use "$port"; then
      local_log=""
      fail "$where: port $port on 127.0.0.1 is taken by another process; the README's commands need it (find it with: ss -ltnp 'sport = :$port')"
    fi
    echo "---- $where (background, as in another terminal): $command"
    local_log="$work/local-$line_number.log"
    # A background job starts with SIGINT ignored; a terminal's would not.
    (cd "$work" && exec env --default-signal=INT bash -c "exec $command") > "$local_log" 2>&1 &
    local_pid=$!
    ready=0
    for ((i = 0; i < ready_timeout_s * 10; ++i)); do
      if grep -q "workers ready" "$local_log"; then ready=1; break; fi
      kill -0 "$local_pid" 2>/dev/null || break
      sleep 0.1
    done
    if [[ $ready -eq 0 ]]; then
      if kill -0 "$local_pid" 2>/dev/null; then
        fail "$where: no 'workers ready' line within ${ready_timeout_s} s"
      fi
      wait "$local_pid"; rc=$?; local_pid=""
      fail "$where: tessera local exited with status $rc before its workers were ready"
    fi
    mapfile -t local_children < <(children_of "$local_pid")
    grep "workers ready" "$local_log"
    ran_local=$((ran_local + 1))
    continue
  fi
  echo "---- $where: $command"
  limit_s=$((deadline - SECONDS < command_timeout_s ? deadline - SECONDS : command_timeout_s))
  [[ $limit_s -gt 0 ]] || fail "$where: out of time (README_TOTAL_TIMEOUT_S) before: $command"
  (cd "$work" && timeout -k 10 "$limit_s" bash -o pipefail -c "$command") < /dev/null
  rc=$?
  [[ $rc -ne 124 && $rc -ne 137 ]] || fail "$where: timed out after ${limit_s} s: $command"
  [[ $rc -eq 0 ]] || fail "$where: exited with status $rc: $command"
  echo  # output need not end with a newline (text, decoded ids)
  if [[ "$command" =~ ^\./build/tools/tessera[[:space:]]+generate([[:space:]]|$) ]]; then
    ran_generate=$((ran_generate + 1))
  fi
done < "$commands_file"

if [[ -n "$local_pid" ]]; then
  echo "---- Ctrl-C to the last cluster"
  stop_local
  [[ "$stop_status" == 0 ]] || fail "the last tessera local did not stop cleanly on SIGINT: $stop_status"
  grep -q "local cluster: stopped" "$local_log" || fail "the last tessera local never said 'stopped'"
fi
[[ $ran -gt 0 ]] || fail "$readme_name: every extracted command was skipped; nothing ran"
[[ $ran_local -gt 0 && $ran_generate -gt 0 ]] ||
  fail "$readme_name: ran $ran_local \`tessera local\` and $ran_generate \`tessera generate\` commands; expected both (did the README's format change?)"
echo "PASS: ran $ran commands from $readme_name ($ran_local local clusters, $ran_generate generate), skipped ${#skipped[@]}: ${skipped[*]}"
