#!/usr/bin/env bash
# Keyward quick start: a throw-away store in a temporary folder, a fresh master
# key, two secrets, one rendered template, and the access log they leave.
#
#   cargo build --release -p keyward && examples/quickstart.sh
#   KEYWARD_BIN=target/debug/keyward examples/quickstart.sh
#
# Nothing outside the temporary folder is touched; it is removed on exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${KEYWARD_BIN:-$root/target/release/keyward}
if [[ ! -x $bin ]]; then
    echo "quickstart: no keyward binary at $bin" >&2
    echo "quickstart: build it with 'cargo build --release -p keyward' or set KEYWARD_BIN" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A private store: the default SQLite file lands in $KEYWARD_DATA_DIR.
export KEYWARD_DATA_DIR=$work
unset KEYWARD_DATABASE_URL KEYWARD_MASTER_KEY_PREVIOUS
# A fresh key for this run only. In production it comes from a root-owned
# EnvironmentFile (see docs/credentials.md), never from a script.
KEYWARD_MASTER_KEY=$("$bin" key generate)
export KEYWARD_MASTER_KEY

kw() { "$bin" "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "store two secrets (values come from stdin, never from argv)"
printf '%s\n' 'example-global-token' |
    kw secret set GITHUB_TOKEN --description "fallback token for every agent"
printf '%s\n' 'example-coder-token' |
    kw secret set GITHUB_TOKEN --scope agent_type:coder --description "token of the coder agents"

step "list them (metadata only)"
kw secret list

step "read one back (the reason is recorded in the access log)"
kw secret get GITHUB_TOKEN --scope agent_type:coder --reason "quickstart: check the stored value"
echo

step "render a template for instance i-42 of agent type coder"
cat >"$work/agent.env" <<'TEMPLATE'
# Bare name: resolved instance:i-42 -> agent_type:coder -> global.
GITHUB_TOKEN=${SECRET:GITHUB_TOKEN}
# Explicit scope: pinned, no resolution.
FALLBACK_TOKEN=${SECRET:global/GITHUB_TOKEN}
# Escape: $${SECRET: renders as the literal text.
LITERAL=$${SECRET:NOT_A_PLACEHOLDER}
TEMPLATE
kw render --context instance=i-42 --context agent_type=coder \
    --reason "quickstart: write agent.env" <"$work/agent.env"

step "a template with unknown names renders nothing and exits 3"
status=0
printf 'A=${SECRET:GITHUB_TOKEN}\nB=${SECRET:NO_SUCH}\nC=${SECRET:ALSO_MISSING}\n' |
    kw render --reason "quickstart: missing secrets" || status=$?
echo "exit status: $status"

step "the access log"
kw audit tail -n 20

step "verify the hash chain"
kw audit verify
