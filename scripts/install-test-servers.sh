#!/usr/bin/env bash
# Installs the real servers some tests run against (Redis, PostgreSQL, NATS) from Debian's packages when missing.
# The tests start their own instances on free loopback ports; nothing is started here.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing test servers: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packages start system services; the tests run their own instances instead.
  for svc in redis-server postgresql nats-server; do $sudo service "$svc" stop >/dev/null 2>&1 || true; done
fi
