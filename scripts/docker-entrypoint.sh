#!/bin/bash
# Entrypoint of the rehearse-postgres test image (scripts/docker-test-image.sh):
# the official postgres image's contract on Debian's packages.
# POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres), POSTGRES_DB
# (default: the user), POSTGRES_INITDB_ARGS; arguments starting with `-`
# (such as `-c name=value`) go to the server.
set -Eeuo pipefail
if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chmod 00700 "$PGDATA"
  chmod 03775 /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  # Only what postgres does not own yet, as the official image does: a
  # recursive chown would copy every file of a data dir that lives in an
  # image layer (a rehearse snapshot image) up into the container's layer.
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  # setpriv execs in place (no parent left behind), so the server stays PID 1
  # and receives `docker stop`'s signal itself.
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "error: POSTGRES_PASSWORD is not set; pass -e POSTGRES_PASSWORD=..." >&2
    exit 1
  fi
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image
  initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-}
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # A temporary server on the unix socket only, as the official image runs:
  # nothing outside the container can connect before initialisation is done,
  # and it logs "ready to accept connections" once before the real server does.
  shift
  # The server's own arguments, quoted for the shell pg_ctl runs postgres
  # through; none with the default command (printf '%q ' with no argument
  # would print '', an empty argument postgres refuses).
  server_args=""
  if [ "$#" -gt 0 ]; then
    server_args="$(printf '%q ' "$@")"
  fi
  pg_ctl -D "$PGDATA" -w -o "$server_args-c listen_addresses='' -p 5432" start
  if [ "$db" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --username "$user" --no-password --dbname postgres \
      --set db="$db" <<<'CREATE DATABASE :"db";'
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop
  set -- postgres "$@"
  echo
  echo 'PostgreSQL init process complete; ready for start up.'
  echo
fi
exec "$@"
