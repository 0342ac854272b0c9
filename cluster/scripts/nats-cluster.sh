#!/usr/bin/env bash
# A 3-server NATS JetStream cluster on 127.0.0.1, for feedcore-cluster's tests and
# examples. Every server listens on 127.0.0.1 only and keeps its data under DIR.
#
#   nats-cluster.sh prepare DIR C1 C2 C3 R1 R2 R3
#       installs nats-server (Debian's package) where it is missing, writes
#       DIR/n1.conf .. DIR/n3.conf (client ports C1..C3, cluster route ports R1..R3)
#       and prints "ready".
#   nats-cluster.sh server DIR I
#       runs server I (1 to 3) in the foreground (exec: the caller's child is the
#       server itself, so killing the child kills the server).
#   nats-cluster.sh up DIR [BASE_PORT]
#       prepare with ports BASE_PORT.. (default 14222) and run all three servers
#       until Ctrl-C; for trying the cluster by hand.
#
# Exits 3 after a line starting with "SKIP:" when nats-server is missing and cannot
# be installed, so a caller can skip rather than fail.
set -euo pipefail

need_server() {
  if command -v nats-server >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "nats-server is missing: installing Debian's package" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server) >&2 || true
  fi
  if ! command -v nats-server >/dev/null 2>&1; then
    echo "SKIP: nats-server is not installed and could not be installed (apt-get install nats-server)"
    exit 3
  fi
}

write_conf() { # DIR I CLIENT_PORT ROUTE_PORT OTHER_ROUTE_PORT OTHER_ROUTE_PORT
  local dir=$1 i=$2 client=$3 route=$4 r1=$5 r2=$6
  mkdir -p "$dir/n$i"
  cat >"$dir/n$i.conf" <<CONF
server_name: feedcore-n$i
listen: 127.0.0.1:$client
jetstream {
  store_dir: "$dir/n$i"
  max_memory_store: 64MB
  max_file_store: 2GB
}
cluster {
  name: feedcore
  listen: 127.0.0.1:$route
  no_advertise: true
  routes: [nats-route://127.0.0.1:$r1, nats-route://127.0.0.1:$r2]
}
CONF
}

prepare() { # DIR C1 C2 C3 R1 R2 R3
  need_server
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  write_conf "$dir" 1 "$2" "$5" "$6" "$7"
  write_conf "$dir" 2 "$3" "$6" "$5" "$7"
  write_conf "$dir" 3 "$4" "$7" "$5" "$6"
  echo ready
}

case "${1:-}" in
  prepare)
    [ $# -eq 8 ] || { echo "usage: $0 prepare DIR C1 C2 C3 R1 R2 R3" >&2; exit 2; }
    shift; prepare "$@" ;;
  server)
    [ $# -eq 3 ] || { echo "usage: $0 server DIR I" >&2; exit 2; }
    need_server
    exec nats-server -c "$2/n$3.conf" ;;
  up)
    dir=${2:?usage: $0 up DIR [BASE_PORT]}
    base=${3:-14222}
    prepare "$dir" "$base" $((base + 1)) $((base + 2)) $((base + 10)) $((base + 11)) $((base + 12)) >/dev/null
    dir=$(cd "$dir" && pwd)
    pids=()
    for i in 1 2 3; do nats-server -c "$dir/n$i.conf" & pids+=($!); done
    trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
    echo "NATS JetStream cluster up: nats://127.0.0.1:$base,nats://127.0.0.1:$((base + 1)),nats://127.0.0.1:$((base + 2)) (Ctrl-C stops it)"
    wait ;;
  *)
    echo "usage: $0 prepare|server|up ..." >&2; exit 2 ;;
esac
