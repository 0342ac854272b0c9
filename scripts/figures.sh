#!/usr/bin/env bash
# Runs every bench and the sim runs that docs/figures.md reports, then writes it.
#   scripts/figures.sh            everything (about 40 minutes on 2 cores)
#   scripts/figures.sh log sim    only those (bench names, sim, sim-capacity, sim-remote, sim-preset, sim-redis, sim-redis-all, sweep)
# Each run writes target/figures/NAME.json; scripts/figures.py turns them into the page.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/figures
all=(log graph fanout strategies restart streams outbox sim sim-capacity sim-remote sim-preset sim-redis sim-redis-all sweep)
want=("${@:-${all[@]}}")
for what in "${want[@]}"; do
  echo "== $what"
  case "$what" in
    log | graph | fanout | strategies | restart | streams | outbox) cargo bench --bench "$what" ;;
    sim) cargo run --release -- sim --json > target/figures/sim.json ;;
    sim-remote) cargo run --release -- sim --remote-share 0.3 --strategy push --json > target/figures/sim-remote.json ;;
    sim-capacity) cargo run --release -- sim --users 1000000 --strategy push --json > target/figures/sim-capacity.json ;;
    sim-preset) cargo run --release -- sim --preset twitter-2012 --seconds 60 --json > target/figures/sim-preset.json ;;
    sim-redis | sim-redis-all)
      if command -v redis-server >/dev/null 2>&1; then
        baseline=redis
        [ "$what" = sim-redis-all ] && baseline=redis-all
        cargo run --release -- sim --baseline "$baseline" --json > "target/figures/$what.json"
      else
        echo "redis-server is not installed (Debian: apt-get install -y redis-server): skipped"
      fi
      ;;
    sweep) cargo run --release -- sim --sweep read-write=0.1,1,10 --ops 1000000 --json > target/figures/sweep.json ;;
    *) echo "unknown: $what (one of ${all[*]})" >&2; exit 2 ;;
  esac
done
python3 scripts/figures.py
