#!/bin/sh
# Auditor entry point (SPEC §5): verify an audit bundle offline against pinned trust roots.
#   scripts/verify.sh BUNDLE.json --trust TRUST_FILE [--trusted-key VKEY ...] [--invariant ID] [--json] [--since CHECKPOINT_FILE]
#   scripts/verify.sh BUNDLE.json INV-6 --trust TRUST_FILE   # the FC seed's "verify.sh: INV-6": same as --invariant FC-INV-6
# TRUST_FILE is the deployment's trust roots obtained out of band (`failclosed trust-roots`,
# GET /v1/trust-roots); `--trust-bundle-keys` instead trusts the bundle's own keys, and says so.
# Exit 0: every check holds under the pinned roots. 1: a violation (the report names it).
# 2: unusable input. 3: no pinned trust roots (nothing was verified against a key you trust).
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
