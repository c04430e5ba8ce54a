#!/usr/bin/env bash
# A job beside the rest of `make test`, on the CPU the foreground leaves idle:
#   tests/background.sh start NAME 'COMMAND'  runs the command line (bash -eu -o pipefail) in the
#       background, in its own session, at nice 19 (BG_NICE=… for another), its output
#       to target/bg/NAME.log;
#   tests/background.sh wait NAME   blocks until it has ended, prints its log whole under a header
#       with its exit status and wall time, and exits with its status (1 if it never started or
#       was killed);
#   tests/background.sh stop NAME   kills its process group if it is still running (the cleanup
#       of a `make test` that failed elsewhere first).
set -uo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 start NAME 'COMMAND' | wait NAME | stop NAME" >&2; exit 2; }
(($# >= 2)) || usage
verb=$1 name=$2 dir=target/bg
f=$dir/$name
case $verb in
  start)
    (($# == 3)) || usage
    mkdir -p "$dir"; rm -f "$f.pid" "$f.end"
    # setsid: its own session and process group, so `stop` reaches cargo and rustc under it; $$
    # of the bash it runs is the group's id. A new session is also a new scheduler autogroup
    # where the kernel has them (Linux, sched_autogroup_enabled = 1, as on the 2-core machine):
    # CPU is shared between autogroups first, and a process's nice counts only inside its own,
    # so the job's autogroup gets the same nice (/proc/self/autogroup) — without it, "nice 19"
    # took half the CPU from the foreground's builds.
    setsid bash -c 'echo $$ >"$1.pid"; echo "$2" 2>/dev/null >/proc/self/autogroup
      s=$(date +%s); nice -n "$2" bash -eu -o pipefail -c "$3"; rc=$?
      echo "$rc $(($(date +%s) - s))" >"$1.end"' _ "$f" "${BG_NICE:-19}" "$3" \
      >"$f.log" 2>&1 </dev/null &
    for _ in $(seq 50); do [[ -s $f.pid ]] && break; sleep 0.1; done
    echo "background: $name started (nice ${BG_NICE:-19}; log printed when it is waited for, target/bg/$name.log)"
    ;;
  wait)
    [[ -s $f.pid ]] || { echo "background: $name was not started"; exit 1; }
    pid=$(<"$f.pid") waited=$(date +%s)
    while [[ ! -s $f.end ]] && kill -0 "$pid" 2>/dev/null; do sleep 1; done
    read -r rc secs 2>/dev/null <"$f.end" || { rc=1 secs="?"; }
    echo "--- background $name: exit $rc, ${secs} s (waited $(($(date +%s) - waited)) s for it)"
    cat "$f.log"
    ((rc == 0)) || { echo "background $name FAILED"; exit 1; }
    ;;
  stop)
    if [[ -s $f.pid && ! -s $f.end ]]; then kill -TERM -- "-$(<"$f.pid")" 2>/dev/null || true; fi
    ;;
  *) usage ;;
esac
