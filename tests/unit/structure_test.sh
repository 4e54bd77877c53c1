#!/usr/bin/env bash
# The layering the build promises (docs/architecture.md, "Layering"), checked on
# the built binary and on the sources:
#   1. ppe-backend, the pdns plugin, loads none of libvirt, SQLite or libmaxminddb;
#   2. backend-plugin/ includes from ppe-service/ only the shared headers below;
#   3. the small shared components include nothing of the server above them.
# usage: structure_test.sh SOURCE_DIR PPE_BACKEND_BINARY
set -u
src=${1:?source dir}
backend=${2:?ppe-backend binary}
failed=0

# 1. Shared libraries of the plugin.
if ! libs=$(ldd "$backend"); then
  echo "FAIL: ldd $backend"
  exit 1
fi
heavy=$(grep -E 'libvirt|libsqlite3|libmaxminddb' <<<"$libs")
if [[ -n $heavy ]]; then
  echo "FAIL: ppe-backend loads server-only libraries:"
  echo "$heavy"
  failed=1
fi

# 2. What the plugin may include from ppe-service/: the shared small targets.
allowed_for_plugin='ppe-service/common/log.h
ppe-service/common/status_macros.h
ppe-service/config/text_proto.h
ppe-service/dns/client_subnet.h
ppe-service/dns/name_parser.h'
while IFS=: read -r file header; do
  if ! grep -qxF "$header" <<<"$allowed_for_plugin"; then
    echo "FAIL: ${file#"$src"/} includes $header (not one of the shared headers)"
    failed=1
  fi
done < <(grep -rHoE '^#include "ppe-service/[^"]+"' "$src/backend-plugin" \
           | sed -E 's/:#include "([^"]+)"$/:\1/')

# 3. Lower layers never reach up. Each folder may include only these folders.
declare -A may_include=(
  [common]='common'
  [dns]='dns'
  [net]='net'
  [store]='store'
  [cpt]='cpt'
  [config]='config cpt dns net'
  [forecast]='forecast'
)
for dir in "${!may_include[@]}"; do
  [[ -d $src/ppe-service/$dir ]] || continue
  while IFS=: read -r file header; do
    component=${header#ppe-service/}
    component=${component%%/*}
    if ! grep -qw "$component" <<<"${may_include[$dir]}"; then
      echo "FAIL: ${file#"$src"/} includes $header; ppe-service/$dir/ may include only: ${may_include[$dir]}"
      failed=1
    fi
  done < <(grep -rHoE '^#include "ppe-service/[^"]+"' "$src/ppe-service/$dir" \
             | sed -E 's/:#include "([^"]+)"$/:\1/')
done

if ((failed)); then exit 1; fi
echo "ok: ppe-backend loads $(wc -l <<<"$libs") libraries, none of libvirt/SQLite/libmaxminddb;" \
     "backend-plugin/ and the shared components include only what they may"
