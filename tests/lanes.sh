#!/usr/bin/env bash
# Runs test suites side by side: `tests/lanes.sh NAME 'COMMAND' [NAME 'COMMAND' …]`. Each lane is a
# shell command line (`a && b` runs a then b in that lane) with its own log, target/lanes/NAME.log.
# When every lane has ended, each log is printed whole, in the order given, under a header with
# the lane's exit status and wall time; the script fails if any lane failed, naming it.
# Ports: every lane gets the same claims directory in KEYGATE_PORT_CLAIMS (made here, removed at
# the end; lanes.sh run inside a lane keeps its caller's), where tests/support/ports.{py,mjs}
# claim each port they hand out, so two suites side by side are never handed the same port.
# Used by `make test` where suites mostly wait (on timers, TTLs, Envoys) rather than compute,
# and for builds whose cargo locks differ (build-envoy beside build-js).
set -uo pipefail
cd "$(dirname "$0")/.."
(($# >= 2 && $# % 2 == 0)) || { echo "usage: $0 NAME 'COMMAND' [NAME 'COMMAND' …]" >&2; exit 2; }
mkdir -p target/lanes
own_claims=""
if [[ -z ${KEYGATE_PORT_CLAIMS:-} ]]; then
  own_claims=$(mktemp -d "$PWD/target/lanes/ports.XXXXXX") || exit 1
  export KEYGATE_PORT_CLAIMS=$own_claims
  trap 'rm -rf "$own_claims"' EXIT
fi
names=() pids=() starts=()
while (($#)); do
  name=$1 cmd=$2; shift 2
  names+=("$name"); starts+=("$(date +%s)")
  rm -f "target/lanes/$name.end"
  (bash -eu -o pipefail -c "$cmd"; echo "$? $(date +%s)" >"target/lanes/$name.end") >"target/lanes/$name.log" 2>&1 &
  pids+=($!)
done
echo "lanes: ${names[*]} (side by side; logs in target/lanes/)"
wait "${pids[@]}"
failed=() rcs=() ends=()
for i in "${!names[@]}"; do
  read -r rc end <"target/lanes/${names[$i]}.end" || { rc=1 end=$(date +%s); }
  rcs[i]=$rc; secs=$((end - starts[i]))
  echo "--- lane ${names[$i]}: exit ${rcs[$i]}, ${secs} s"
  cat "target/lanes/${names[$i]}.log"
  ((rcs[i] == 0)) || failed+=("${names[$i]}")
done
if ((${#failed[@]})); then echo "lanes FAILED: ${failed[*]}"; exit 1; fi
echo "lanes: all ${#names[@]} passed"
