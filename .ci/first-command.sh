#!/usr/bin/env bash
# The README's first command, exactly as written: take the first line of the README's
# first ```sh block, run it with a clean environment (HOME, the XDG dirs and
# EMONK_STATE_DIR in a temp dir, so it runs on defaults), wait for
# "listening on ws://127.0.0.1:18789", send SIGINT as Ctrl-C would, and require exit 0.
# So the README cannot drift from what works again.
#
# Run by hand from anywhere in the repository: .ci/first-command.sh
# FIRST_COMMAND_TIMEOUT (seconds, default 300) bounds the wait, which includes the release
# build. Whatever happens, the command's whole process group is killed before this exits.
set -euo pipefail

cd "$(dirname "$0")/.."

timeout_s=${FIRST_COMMAND_TIMEOUT:-300}
port=18789

# The first line of the first ```sh block.
line=$(awk '/^```sh[[:space:]]*$/ { inside = 1; next } inside { print; exit }' README.md)
if [ -z "$line" ]; then
    echo "FAIL: README.md has no \`\`\`sh block with a first line to run" >&2
    exit 1
fi
echo "README's first command: $line"

# The command binds the default port; if something else holds it, say so plainly rather
# than failing with the gateway's port-in-use error further down.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    holder=""
    if command -v ss >/dev/null 2>&1; then
        holder=$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/ (\1)/p' | head -n 1)
    fi
    echo "FAIL: port $port on 127.0.0.1 is already in use on this machine$holder;" \
        "the README's command needs it. Stop that process and run .ci/first-command.sh again." >&2
    exit 1
fi

tmp=$(mktemp -d)
log="$tmp/output.log"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/home" "$tmp/config" "$tmp/state" "$tmp/data" "$tmp/cache"
# Cargo and rustup keep their homes (toolchains, the registry, a CI target dir); everything
# emonkd reads comes from the temp dir.
clean_env=(
    env -i
    "PATH=$PATH"
    "HOME=$tmp/home"
    "XDG_CONFIG_HOME=$tmp/config"
    "XDG_STATE_HOME=$tmp/state"
    "XDG_DATA_HOME=$tmp/data"
    "XDG_CACHE_HOME=$tmp/cache"
    "EMONK_STATE_DIR=$tmp/state/emonk"
    "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}"
    "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}"
)
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    clean_env+=("CARGO_TARGET_DIR=$CARGO_TARGET_DIR")
fi

# Job control: the command gets its own process group (so SIGINT reaches it as Ctrl-C
# reaches a foreground job, and cleanup can kill all of it) and SIGINT is not ignored, as
# it would be for a plain background job of a script.
set -m
"${clean_env[@]}" bash -c "$line" >"$log" 2>&1 &
pid=$!
set +m

fail() {
    echo "FAIL: $*" >&2
    echo "---- last lines of its output ----" >&2
    tail -n 40 "$log" >&2 || true
    exit 1
}

deadline=$((SECONDS + timeout_s))
until grep -q "listening on ws://127.0.0.1:$port" "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
        status=0
        wait "$pid" || status=$?
        pid=""
        fail "\`$line\` exited with status $status before it logged \"listening on ws://127.0.0.1:$port\""
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        fail "\`$line\` did not log \"listening on ws://127.0.0.1:$port\" within ${timeout_s}s (FIRST_COMMAND_TIMEOUT raises the bound)"
    fi
    sleep 1
done
echo "ok   it logged: $(grep -m 1 "listening on" "$log")"

kill -INT -- "-$pid"
# emonkd's stop is bounded at 5 s; give it a little more.
stop_deadline=$((SECONDS + 10))
while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$stop_deadline" ]; then
        fail "\`$line\` did not exit within 10s of SIGINT"
    fi
    sleep 0.2
done
status=0
wait "$pid" || status=$?
pid=""
if [ "$status" -ne 0 ]; then
    fail "\`$line\` exited with status $status after SIGINT; want 0"
fi
echo "ok   SIGINT: exit 0"
