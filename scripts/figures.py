#!/usr/bin/env python3
"""Writes docs/figures.md from the figures the benches and the sim wrote as JSON.

Inputs (each optional; a missing one is listed as not measured):
  target/figures/{log,graph,fanout,strategies,restart,streams,outbox}.json   written by `cargo bench --bench NAME`
  target/figures/sim.json          `feedcore sim --json` on its defaults
  target/figures/sim-capacity.json `feedcore sim --users 1000000 --strategy push --json`
  target/figures/sim-preset.json   `feedcore sim --preset twitter-2012 --seconds 60 --json`
  target/figures/sim-redis.json    `feedcore sim --baseline redis --json` (lists, Twitter's layout)
  target/figures/sim-redis-all.json `feedcore sim --baseline redis-all --json` (lists and sorted sets)
  target/figures/sweep.json        `feedcore sim --sweep read-write=0.1,1,10 --ops 1000000 --json`
  target/figures/sim-remote.json   `feedcore sim --remote-share 0.3 --strategy push --json`

`scripts/figures.sh` runs all of them and then this script. Every figure is printed
beside the baseline measured in the same run, with its ratio.
"""

import datetime
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIGURES = ROOT / "target" / "figures"
OUT = ROOT / "docs" / "figures.md"

BENCHES = [
    ("log", "The notice log"),
    ("graph", "The follow graph"),
    ("fanout", "Push fan-out and timelines"),
    ("strategies", "Strategies, in process"),
    ("restart", "Restart"),
    ("streams", "Groups, tags and the public timeline"),
    ("outbox", "Federation's delivery outbox"),
]


def load(name):
    path = FIGURES / f"{name}.json"
    if not path.exists():
        return None
    with open(path) as f:
        return json.load(f)


def num(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if isinstance(v, float) and v != v:  # NaN
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def when(doc):
    ts = doc.get("written_unix_s") or doc.get("written")
    if not ts:
        return "unknown time"
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def bench_section(name, title):
    doc = load(name)
    lines = [f"## {title}", ""]
    if doc is None:
        lines += [f"Not measured: run `cargo bench --bench {name}`.", ""]
        return lines
    lines += [
        f"`{doc['command']}`, {doc.get('cpus', '?')} CPUs, load average {doc.get('load_average', '?')}"
        f" at the end, {when(doc)}.",
        "",
        "| figure | feedcore | baseline (same run) | baseline value | ratio | budget |",
        "|---|---|---|---|---|---|",
    ]
    for f in doc["figures"]:
        unit = f["unit"]
        value = f"{num(f['value'])} {unit}"
        if "baseline" in f:
            base = f["baseline"]
            bval = f"{num(f['baseline_value'])} {unit}"
            ratio = num(f["ratio"])
        else:
            base, bval, ratio = "-", "-", "-"
        lines.append(f"| {f['figure']} | {value} | {base} | {bval} | {ratio} | {f.get('budget') or ''} |")
    lines.append("")
    return lines


def runs_by(doc, system=None):
    out = {}
    for r in doc["measured"]["runs"]:
        if system is None or r.get("system") == system:
            out.setdefault(r["strategy"], r)
    return out


def sim_section():
    lines = ["## The laboratory, `feedcore sim`", ""]
    doc = load("sim")
    if doc is None:
        return lines + ["Not measured: run `cargo run --release -- sim --json > target/figures/sim.json`.", ""]
    m = doc["measured"]
    g = doc["workload"]["graph"]["summary"]
    w = doc["workload"]["ratios"][0]
    lines += [
        f"`cargo run --release -- sim`: {g['users']:,} users, {g['follows']:,} follows, "
        f"{w['posts'] + w['reads']:,} operations at {num(w['read_write'])} reads a post; "
        f"{m['machine'].get('cpus', '?')} CPUs, wall {num(m['wall_s'])} s for the whole run. "
        "Cost is id bytes touched per operation; the last column is each strategy's cost over "
        "push's, same run.",
        "",
        "| strategy | posts/s | deliveries/s | reads/s | read p50 / p99 / p999 us | lag p50 / p99 ms | anon RSS delta MB | B/entry | cost B/op | cost / push | capacity deliveries/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    runs = [r for r in m["runs"] if r.get("system", "feedcore") == "feedcore"]
    push = next((r for r in runs if r["strategy"] == "push"), None)
    for r in runs:
        lat = r["read_latency_us"]
        lag = r.get("delivery_lag_ms") or {}
        mem = r["memory"]
        lag_s = f"{num(lag.get('p50'))} / {num(lag.get('p99'))}" if r["deliveries"] else "-"
        bpe = num(mem.get("timeline_bytes_per_entry")) if mem.get("timeline_entries") else "-"
        ratio = num(r["cost"]["per_op"] / push["cost"]["per_op"]) if push else "-"
        cap = r.get("capacity")
        cap_s = num(cap["deliveries_per_s"]) if cap else "-"
        lines.append(
            f"| {r['strategy']} | {num(r['posts_per_s'])} | {num(r['deliveries_per_s'])} | {num(r['reads_per_s'])} "
            f"| {num(lat['p50'])} / {num(lat['p99'])} / {num(lat['p999'])} | {lag_s} "
            f"| {num(mem['resident_anon_delta_bytes'] / 1e6)} | {bpe} | {num(r['cost']['per_op'])} | {ratio} | {cap_s} |"
        )
    cap = push and push.get("capacity")
    if cap:
        lines += [
            "",
            f"Capacity: after each pushing run, {cap['drivers']} driver threads post {cap['posts']:,} notices as fast "
            "as they can (authors drawn by follower count) into the active timelines; deliveries per second from the "
            "first post to the end of the flush.",
        ]
    lines.append("")
    return lines


def remote_section():
    lines = ["## Federation in the laboratory, `feedcore sim --remote-share 0.3`", ""]
    doc = load("sim-remote")
    if doc is None:
        return lines + ["Not measured: run `cargo run --release -- sim --remote-share 0.3 --strategy push --json > target/figures/sim-remote.json`.", ""]
    for r in doc["measured"]["runs"]:
        o = r.get("outbox")
        if not o:
            continue
        lag, home = o["lag_ms"], r.get("delivery_lag_ms") or {}
        lines += [
            f"{o['remote_accounts']:,} of the users are remote accounts on {o['remote_servers']:,} servers "
            f"(one in {o['servers_down_one_in']} down); they posted {o['remote_posts']:,} notices through `post_remote`. "
            f"A delivery worker took {o['handed_out']:,} deliveries in batches of 256 and acked {o['acked']:,} "
            f"({o['followers_addressed']:,} followers) with `ack_all`; {o['failed']:,} failed.",
            "",
            "| figure | value | baseline, same run | ratio |",
            "|---|---|---|---|",
            f"| outbox lag p50, post to hand-out | {num(lag['p50'])} ms | home delivery lag p50: {num(home.get('p50'))} ms | {num(lag['p50'] / home['p50']) if home.get('p50') else '-'} |",
            f"| outbox lag p99 | {num(lag['p99'])} ms | home delivery lag p99: {num(home.get('p99'))} ms | {num(lag['p99'] / home['p99']) if home.get('p99') else '-'} |",
            f"| most deliveries pending at once | {o['pending_max']:,} | | |",
            f"| queue bytes at most | {o['queue_bytes_max']:,} B | | |",
            f"| outbox file at the end | {o['file_bytes']:,} B | | |",
            "",
        ]
    return lines


def redis_section():
    lines = ["## Against Redis, `feedcore sim --baseline redis-all`", ""]
    lists, sim = load("sim-redis"), load("sim")
    if lists and sim:
        a, b = lists["measured"]["wall_s"], sim["measured"]["wall_s"]
        lines += [
            f"Whole run: `feedcore sim --baseline redis` (Redis lists after the five strategies) took {num(a)} s, "
            f"`feedcore sim` {num(b)} s: {num(a / b)}x (budget: within 2x).",
            "",
        ]
    doc = load("sim-redis-all") or lists
    if doc is None:
        return lines + ["Not measured: run `cargo run --release -- sim --baseline redis-all --json > target/figures/sim-redis-all.json`.", ""]
    m = doc["measured"]
    runs = m["runs"]
    push = next((r for r in runs if r.get("system", "feedcore") == "feedcore" and r["strategy"] == "push"), None)
    others = [r for r in runs if r.get("system", "feedcore") != "feedcore"]
    for r in others:
        r["system"] = r.get("layout", r["system"])
    if push is None or not others:
        return lines + ["The file holds no Redis run.", ""]
    lines += [
        f"Same workload, same run (wall {num(m['wall_s'])} s); ratio = the Redis layout's value / feedcore push's.",
        "",
        "| figure | feedcore push | " + " | ".join(f"{r['system']} | ratio" for r in others) + " |",
        "|---|---|" + "---|---|" * len(others),
    ]

    def row(label, get):
        p = get(push)
        cells = []
        for r in others:
            v = get(r)
            cells.append(f"{num(v)} | {num(v / p) if p else '-'}")
        lines.append(f"| {label} | {num(p)} | " + " | ".join(cells) + " |")

    row("deliveries/s", lambda r: r["deliveries_per_s"])
    row("reads/s (page of 20 with bodies)", lambda r: r["reads_per_s"])
    row("read p50 us", lambda r: r["read_latency_us"]["p50"])
    row("read p99 us", lambda r: r["read_latency_us"]["p99"])
    row("memory delta MB", lambda r: r["memory"].get("resident_anon_delta_bytes", r["memory"].get("used_memory_delta_bytes", 0)) / 1e6)
    bench = m.get("redis_benchmark")
    if bench:
        lines += [
            "",
            f"`{bench['command']}` against the same server: {num(bench['lpush_per_s'])} LPUSH/s. The fan-out's "
            "commands per second beside it: "
            + "; ".join(f"{f['layout']} {num(f['fan_out_commands_per_s'])} ({num(f['ratio_to_benchmark'])}x)" for f in bench["fan_out"])
            + ".",
        ]
    lines.append("")
    return lines


def sweep_section():
    lines = ["## The strategies' cost across read rates", ""]
    doc = load("sweep")
    if doc is None:
        return lines + ["Not measured: run `cargo run --release -- sim --sweep read-write=0.1,1,10 --ops 1000000 --json > target/figures/sweep.json`.", ""]
    costs = doc["measured"]["cost_by_ratio"]
    ratios = sorted({c["read_write"] for c in costs})
    names = []
    for c in costs:
        if c["strategy"] not in names:
            names.append(c["strategy"])
    cost = {(c["strategy"], c["read_write"]): c["cost_per_op"] for c in costs}
    lines += [
        "`feedcore sim --sweep read-write=0.1,1,10 --ops 1000000`: id bytes touched per operation.",
        "",
        "| strategy | " + " | ".join(f"r:w {num(r)}" for r in ratios) + " |",
        "|---|" + "---|" * len(ratios),
    ]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(num(cost.get((n, r))) for r in ratios) + " |")
    if all((s, r) in cost for s in ("push", "pull", "selective") for r in ratios):
        lines.append(
            "| selective / the cheaper of push and pull | "
            + " | ".join(f"{cost[('selective', r)] / min(cost[('push', r)], cost[('pull', r)]):.3f}" for r in ratios)
            + " |"
        )
    lines.append("")
    return lines


# The README's headline figures: (bench, start of the figure's name).
HEADLINES = [
    ("log", "buffered append, 280-byte bodies"),
    ("log", "group commit"),
    ("graph", "follow edge memory"),
    ("fanout", "push fan-out, 1000000 users, Twitter-like graph, 20000 posts, timelines holding"),
    ("fanout", "timeline memory"),
    ("fanout", "home page of 20 with bodies while both workers fan out, p99"),
    ("strategies", "home page of 20 with bodies, reader following 2000 authors, pull, p99"),
    ("streams", "post to a group of"),
    ("streams", "tag stream, random depth page"),
    ("outbox", "post by an author with 1 M remote followers"),
    ("outbox", "deliveries(64) + ack, one thread"),
]


def headline_rows():
    rows = [
        "| figure | feedcore | baseline, same run | ratio | budget | command |",
        "|---|---|---|---|---|---|",
    ]
    for bench, prefix in HEADLINES:
        doc = load(bench)
        f = doc and next((f for f in doc["figures"] if f["figure"].startswith(prefix)), None)
        if not f:
            continue
        unit = f["unit"]
        base = f"{f['baseline']}: {num(f['baseline_value'])} {unit}" if "baseline" in f else "-"
        ratio = num(f["ratio"]) if "ratio" in f else "-"
        rows.append(f"| {f['figure']} | {num(f['value'])} {unit} | {base} | {ratio} | {f.get('budget') or ''} | `{doc['command']}` |")
    sim = load("sim")
    if sim:
        runs = {r["strategy"]: r for r in sim["measured"]["runs"] if r.get("system", "feedcore") == "feedcore"}
        if "push" in runs and "selective" in runs and "pull" in runs:
            sel, push, pull = (runs[k]["cost"]["per_op"] for k in ("selective", "push", "pull"))
            rows.append(
                f"| selective's cost, `feedcore sim` defaults | {num(sel)} B/op | the cheaper of push ({num(push)}) "
                f"and pull ({num(pull)}) | {sel / min(push, pull):.3f} | <= 1 | `cargo run --release -- sim` |"
            )
    capacity = load("sim-capacity")
    if capacity:
        push = next((r for r in capacity["measured"]["runs"] if r["strategy"] == "push" and r.get("capacity")), None)
        if push:
            g = capacity["workload"]["graph"]["summary"]
            cap = push["capacity"]
            rows.append(
                f"| push fan-out capacity in the sim, {g['users']:,} users, {cap['drivers']} drivers posting flat out "
                f"| {num(cap['deliveries_per_s'])} deliveries/s | the mixed run before it: {num(push['deliveries_per_s'])} deliveries/s "
                f"| {num(cap['deliveries_per_s'] / push['deliveries_per_s'])} | >= 20 M/s "
                "| `cargo run --release -- sim --users 1000000 --strategy push` |"
            )
    preset = load("sim-preset")
    if preset:
        reads, posts = preset["reads"], preset["posts"]
        rows.append(
            f"| Twitter-2012 preset, {preset['parameters']['users']:,} users: home reads achieved, "
            f"p99 from schedule {num(reads['from_schedule_us']['p99'])} us "
            f"| {num(reads['achieved_per_s'])} reads/s | offered: {num(reads['offered_per_s'])} reads/s "
            f"| {reads['held_share']:.3f} | >= 0.5 with p99 <= 1 ms "
            "| `cargo run --release -- sim --preset twitter-2012 --seconds 60` |"
        )
        rows.append(
            f"| Twitter-2012 preset: posts delivered, lag p99 {num(preset['lag_ms']['p99'])} ms "
            f"| {num(posts['achieved_per_s'])} posts/s | offered: {num(posts['offered_per_s'])} posts/s "
            f"| {posts['held_share']:.3f} | 1 with lag p99 <= 1 s "
            "| `cargo run --release -- sim --preset twitter-2012 --seconds 60` |"
        )
    redis = load("sim-redis")
    if redis:
        runs = redis["measured"]["runs"]
        push = next((r for r in runs if r.get("system", "feedcore") == "feedcore" and r["strategy"] == "push"), None)
        lst = next((r for r in runs if r.get("layout") == "redis-list"), None)
        if push and lst:
            rows.append(
                f"| home page of 20 with bodies, p99, `feedcore sim` workload | {num(push['read_latency_us']['p99'])} us "
                f"| Redis lists (LRANGE + MGET): {num(lst['read_latency_us']['p99'])} us "
                f"| {push['read_latency_us']['p99'] / lst['read_latency_us']['p99']:.2f} | | `cargo run --release -- sim --baseline redis` |"
            )
    return rows


def write_readme_block():
    readme = ROOT / "README.md"
    text = readme.read_text()
    begin, end = "<!-- figures:begin -->", "<!-- figures:end -->"
    if begin not in text or end not in text:
        return
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    block = "\n".join([begin, *headline_rows(), end])
    readme.write_text(head + block + tail)
    print("wrote the README's figures table")


def main():
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    out = [
        "# Measured figures",
        "",
        "Written by `scripts/figures.py` from the JSON the benches and the sim write "
        f"(`scripts/figures.sh` runs them all); generated at commit `{commit}`. Do not edit by hand.",
        "Every figure stands beside a baseline measured in the same run; the ratio is feedcore's "
        "value over the baseline's, in the figure's unit (so for times, below 1 is faster; for rates, "
        "above 1 is faster). The budgets are the architecture brief's.",
        "",
    ]
    for name, title in BENCHES:
        out += bench_section(name, title)
    out += sim_section()
    out += remote_section()
    out += redis_section()
    out += sweep_section()
    OUT.write_text("\n".join(out).rstrip() + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    write_readme_block()


if __name__ == "__main__":
    sys.exit(main())
