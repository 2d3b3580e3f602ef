#!/usr/bin/env bash
# Regenerates deepcopy code, CRD manifests and the RBAC role, and fails when that changed anything, so the
# generated files in the tree (in a clean clone: those committed) always match their sources.
set -euo pipefail
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
snapshot() { find api config/crd config/rbac -type f \( -name 'zz_generated*' -o -path 'config/crd/bases/*' -o -path 'config/rbac/role.yaml' \) 2>/dev/null | sort | xargs -r sha256sum; }
snapshot > "$before/sums"
make --no-print-directory generate >/dev/null
if ! diff -u "$before/sums" <(snapshot) >/dev/null; then
  echo "make generate changed generated files; commit what it wrote:" >&2
  diff -u "$before/sums" <(snapshot) | grep '^[-+][0-9a-f]' | awk '{print "  " $2}' | sort -u >&2
  exit 1
fi
