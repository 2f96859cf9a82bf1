#!/bin/sh
# Auditor entry point (SPEC §5): verify an audit bundle offline.
#   scripts/verify.sh BUNDLE.json [--invariant ID] [--json] [--since CHECKPOINT_FILE] [--trusted-key VKEY]
#   scripts/verify.sh BUNDLE.json INV-6 [...]   # the FC seed's "verify.sh: INV-6": same as --invariant FC-INV-6
# Exit 0: every check holds. 1: a violation (the report names it). 2: unusable input.
# Uses the failclosed CLI when built, else the stand-alone verifier (same checks).
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
if [ $# -ge 2 ]; then
  case "$2" in
    INV-[1-6] | FC-INV-[1-6])
      file=$1 inv=$2
      shift 2
      set -- "$file" --invariant "$inv" "$@"
      ;;
  esac
fi
if [ -f "$root/dist/src/cli/main.js" ]; then
  exec node "$root/dist/src/cli/main.js" verify "$@"
fi
exec node "$root/dist/src/verify/cli.js" "$@"
