#!/bin/sh
# rehearse-nightly SCENARIO.yaml [rehearse run flags...]
#
# One night of the nightly rehearsal, with its reports kept on a volume
# (the Kubernetes CronJob in deploy/kubernetes/ runs it; docs/kubernetes.md):
#
#   - tonight's report goes to $REHEARSE_REPORTS/nights/<UTC date and time>/;
#   - it is compared with $REHEARSE_REPORTS/latest/report.json when there is
#     one (--baseline; the very first night has none);
#   - a night that rehearsed every pending migration (exit 0, or 1: a budget
#     breached) becomes `latest`, tomorrow's baseline; a failed night (2, 3,
#     4, 130) compares nothing useful and leaves `latest` alone;
#   - the newest $REHEARSE_KEEP_NIGHTS nights are kept (default 30);
#   - it exits with rehearse's exit code, so the Job gates on it.
#
# rehearse runs as this script's child: a SIGTERM or SIGINT that reaches the
# script (tini forwards `docker stop`'s and the kubelet's to it) is passed on,
# and the script waits for rehearse to clean up and exit 130.
set -u

reports="${REHEARSE_REPORTS:-/reports}"
keep="${REHEARSE_KEEP_NIGHTS:-30}"
if [ $# -lt 1 ]; then
  echo "usage: rehearse-nightly SCENARIO.yaml [rehearse run flags...]" >&2
  exit 3
fi
scenario="$1"
shift
night="$(date -u +%Y-%m-%dT%H%M%SZ)"
out="$reports/nights/$night"
set -- run "$scenario" --out "$out" "$@"
if [ -f "$reports/latest/report.json" ]; then
  set -- "$@" --baseline "$reports/latest/report.json"
fi

rehearse "$@" &
child=$!
# A non-interactive shell's background job ignores SIGINT; rehearse treats
# SIGTERM the same way, so both are passed on as SIGTERM.
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
# `wait` returns as soon as a trapped signal arrives: wait again until
# rehearse itself has exited, for its own exit code.
while :; do
  wait "$child"
  code=$?
  kill -0 "$child" 2>/dev/null || break
done

if [ "$code" -le 1 ] && [ -f "$out/report.json" ]; then
  rm -rf "$reports/latest.new"
  cp -R "$out" "$reports/latest.new"
  rm -rf "$reports/latest"
  mv "$reports/latest.new" "$reports/latest"
fi
ls -1 "$reports/nights" 2>/dev/null | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
  rm -rf "${reports:?}/nights/$old"
done
exit "$code"
