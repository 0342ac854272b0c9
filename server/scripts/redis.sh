#!/usr/bin/env bash
# Starts a redis-server of its own for `feedcore-server --backend redis`: on 127.0.0.1,
# on its own port, with its own directory, no persistence. Installs redis-server first
# where it is missing (apt-get). Prints the URL to pass as --redis; exits 3 with the
# reason where redis-server cannot be had.
#   server/scripts/redis.sh [PORT] [DIR]     (defaults 6390, target/redis-server)
#   stop it: kill "$(cat DIR/redis.pid)"
set -euo pipefail
port="${1:-6390}"
dir="${2:-$(cd "$(dirname "$0")/../.." && pwd)/target/redis-server}"
if ! command -v redis-server >/dev/null 2>&1; then
  if ! { apt-get update && apt-get install -y redis-server; } >&2; then
    echo "redis-server is not installed and apt-get could not install it" >&2
    exit 3
  fi
fi
mkdir -p "$dir"
redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2
for _ in $(seq 100); do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "redis://127.0.0.1:$port/"
    exit 0
  fi
  sleep 0.05
done
echo "redis-server did not answer on port $port (see $dir/redis.log)" >&2
exit 3
