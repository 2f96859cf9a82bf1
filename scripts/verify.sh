#!/bin/sh
# Auditor entry point (SPEC §5): verify an audit bundle offline.
#   scripts/verify.sh BUNDLE.json [--invariant ID] [--json] [--since CHECKPOINT_FILE] [--trusted-key VKEY]
# Exit 0: every check holds. 1: a violation (the report names it). 2: unusable input.
# Uses the failclosed CLI when built, else the stand-alone verifier (same checks).
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
if [ -f "$root/dist/src/cli/main.js" ]; then
  exec node "$root/dist/src/cli/main.js" verify "$@"
fi
exec node "$root/dist/src/verify/cli.js" "$@"
