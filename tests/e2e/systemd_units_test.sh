#!/usr/bin/env bash
# deploy/systemd/*.service pass `systemd-analyze verify` (syntax, known
# directives, hardening options this systemd understands), with ExecStart
# pointed at this build's binaries (verify checks that they exist).
# Exits 77 (ctest SKIP_RETURN_CODE) where systemd-analyze is not installed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${PPE_BUILD_DIR:-$ROOT/build}
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIPPED: systemd-analyze not found (Debian package systemd)"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for unit in "$ROOT"/deploy/systemd/*.service; do
  sed -e "s#/usr/local/bin/ppe-server#$BUILD/ppe-service/ppe-server#" \
      -e "s#/usr/local/bin/ppe-backend#$BUILD/backend-plugin/ppe-backend#" \
      "$unit" >"$TMP/$(basename "$unit")"
done
units=("$TMP"/*.service)
[[ ${#units[@]} -eq 2 ]] || { echo "FAIL: expected 2 units, found ${#units[@]}"; exit 1; }
# verify prints problems (unknown directives, bad values) and exits non-zero on errors.
out=$(systemd-analyze verify --man=no "${units[@]}" 2>&1) || { echo "$out"; echo "FAIL: systemd-analyze verify"; exit 1; }
if [[ -n "$out" ]]; then echo "$out"; echo "FAIL: systemd-analyze verify printed warnings"; exit 1; fi
for unit in "${units[@]}"; do
  for key in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
             RestrictAddressFamilies= CapabilityBoundingSet= ReadWritePaths=; do
    grep -q "^$key" "$unit" || { echo "FAIL: $(basename "$unit") lacks $key"; exit 1; }
  done
done
grep -q '^Before=pdns.service' "$TMP/ppe-backend.service" || { echo "FAIL: ppe-backend not Before=pdns"; exit 1; }
grep -q '^Restart=always' "$TMP/ppe-backend.service" || { echo "FAIL: ppe-backend not Restart=always"; exit 1; }
echo "ok: $(systemd-analyze --version | head -n 1) verified ${#units[@]} units"
