#!/bin/sh
# Entrypoint of the rehearse image (Dockerfile), run by tini as PID 1:
#
#   docker run IMAGE run /scenario/scenario.yaml   -> rehearse run /scenario/scenario.yaml
#   docker run IMAGE rehearse-nightly ...          -> the nightly wrapper (rehearse-nightly.sh)
#   docker run IMAGE sh                            -> a shell, to look around
#
# It execs what it runs, so the process tini forwards `docker stop`'s
# SIGTERM to is rehearse itself (or rehearse-nightly, which passes it on):
# rehearse's supervisor cancels the migration, stops the throwaway server
# and removes its directory before it exits 130.
set -eu

# initdb, the server and libpq look the current user up by uid and refuse
# to run when it has no passwd entry, which is what `docker run --user
# "$(id -u):$(id -g)"` (or an OpenShift-style random uid) gives. Give that
# uid an entry, as the official postgres image does, with nss_wrapper
# preloaded into rehearse and every child: only this process tree sees it.
if ! getent passwd "$(id -u)" >/dev/null 2>&1; then
  wrapper="$(ls /usr/lib/*/libnss_wrapper.so 2>/dev/null | head -n 1)"
  if [ -n "$wrapper" ]; then
    nss_dir="$(mktemp -d /tmp/rehearse-nss.XXXXXX)"
    cp /etc/passwd "$nss_dir/passwd"
    cp /etc/group "$nss_dir/group"
    echo "rehearse:x:$(id -u):$(id -g):rehearse:${HOME:-/tmp}:/bin/sh" >>"$nss_dir/passwd"
    getent group "$(id -g)" >/dev/null 2>&1 || echo "rehearse:x:$(id -g):" >>"$nss_dir/group"
    export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD="$nss_dir/passwd" NSS_WRAPPER_GROUP="$nss_dir/group"
  fi
fi

case "${1:-}" in
  rehearse | rehearse-nightly | sh | bash) exec "$@" ;;
  *) exec rehearse "$@" ;;
esac
