#!/usr/bin/env bash
# The layering the build promises (docs/architecture.md, "Layering"), checked on
# the built binary and on the sources:
#   1. ppe-backend, the pdns plugin, neither links nor loads libvirt, SQLite or
#      libmaxminddb (its link line in build.ninja, when built with Ninja, and ldd);
#   2. backend-plugin/ includes from ppe-service/ only the shared headers below;
#   3. the small shared components include nothing of the server above them.
# usage: structure_test.sh SOURCE_DIR PPE_BACKEND_BINARY [BUILD_DIR]
set -u
src=${1:?source dir}
backend=${2:?ppe-backend binary}
build=${3:-}
failed=0
heavy_libs='libvirt|sqlite3|maxminddb'

# 1. The link line (the linker may drop a library ldd would then not show).
if [[ -n $build && -f $build/build.ninja ]]; then
  link=$(grep -A8 '^build backend-plugin/ppe-backend:' "$build/build.ninja" | grep -m1 LINK_LIBRARIES)
  if [[ -z $link ]]; then
    echo "FAIL: no link line for backend-plugin/ppe-backend in $build/build.ninja"
    failed=1
  elif named=$(grep -oE "[^ ]*($heavy_libs)[^ ]*" <<<"$link"); then
    echo "FAIL: ppe-backend's link line names server-only libraries:"
    echo "$named"
    failed=1
  fi
fi

# 1. The shared libraries it loads.
if ! libs=$(ldd "$backend"); then
  echo "FAIL: ldd $backend"
  exit 1
fi
heavy=$(grep -E "$heavy_libs" <<<"$libs")
if [[ -n $heavy ]]; then
  echo "FAIL: ppe-backend loads server-only libraries:"
  echo "$heavy"
  failed=1
fi

# 2. What the plugin may include from ppe-service/: the shared small targets.
allowed_for_plugin='ppe-service/common/log.h
ppe-service/common/status_macros.h
ppe-service/config/text_proto.h
ppe-service/cpt/cpt_check.h
ppe-service/dns/client_subnet.h
ppe-service/dns/cohort_client.h
ppe-service/dns/name_parser.h'
while IFS=: read -r file header; do
  if ! grep -qxF "$header" <<<"$allowed_for_plugin"; then
    echo "FAIL: ${file#"$src"/} includes $header (not one of the shared headers)"
    failed=1
  fi
done < <(grep -rHoE '^#include "ppe-service/[^"]+"' "$src/backend-plugin" \
           | sed -E 's/:#include "([^"]+)"$/:\1/')

# 3. Lower layers never reach up. Each folder may include only these folders
#    (common/, the bottom, is open to all).
declare -A may_include=(
  [common]='common'
  [dns]='dns common'
  [net]='net common'
  [store]='store common'
  [cpt]='cpt common'
  [config]='config cpt dns net common'
  [forecast]='forecast common'
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
