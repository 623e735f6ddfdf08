"""Printing one voxqueue SOE run, a configuration's repeated runs, and where worker 0 held the
GIL (py-spy)."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.common import num, percentile, say
from benchmarks.sampling import machine_line


def report_pipeline(r: dict, base_fps: float) -> None:
    _headline(r, base_fps)
    _cpu(r)
    _latency_and_database(r)


def report_rounds(rounds: dict[tuple[str, int], list[dict]], base_fps: float) -> None:
    """Each configuration's runs: the median and range of files/s and of worker CPU per file."""
    say("voxqueue, each configuration over its runs (median, range):")
    for (mode, c), runs in rounds.items():
        fps = [r["outcome"]["done"] / r["wall"] for r in runs]
        cpu = [1000 * _worker_cpu(r["sampler"]) / r["files"] for r in runs]
        say(f"  {mode}, {_shape(runs[0])}, {len(runs)} runs:"
            f" {statistics.median(fps):.2f} files/s = {statistics.median(fps) / base_fps:.1f}x baseline"
            f" (range {min(fps) / base_fps:.1f}-{max(fps) / base_fps:.1f}x); worker CPU per file"
            f" {statistics.median(cpu):.1f} ms (range {min(cpu):.1f}-{max(cpu):.1f})")


def _headline(r: dict, base_fps: float) -> None:
    o = r["outcome"]
    fps = o["done"] / r["wall"]
    if r["mode"] == "live":
        how = (f"workers up, then `voxqueue ingest`: {r['ingest_wall']:.2f}s of the run was the ingest"
               " command (it competes with the workers for the CPU)")
    else:
        how = (f"`voxqueue ingest` first ({r['ingest_wall']:.2f}s, not counted), then the workers drain"
               " the full queue; timed from the workers being ready")
    say(f"voxqueue {r['mode']}, {_shape(r)}: {o['done']}/{o['checks']}"
        f" done, {o['failed']} failed in {r['wall']:.2f}s ({how})")
    steady = (f"; between the first and the last result {(o['done'] - 1) / o['results_span']:.2f} files/s"
              if o["results_span"] else "")
    say(f"  {fps:.2f} files/s = {fps / base_fps:.1f}x baseline; {o['chunks'] / r['wall']:.1f} chunks/s"
        f" ({o['chunks']} chunks){steady}")
    if r.get("pool_fps"):
        say(f"  {100 * fps / r['pool_fps']:.0f}% of the bare SDK client pool's"
            f" {r['pool_fps']:.1f} files/s (the ceiling; target 80%)")


def _shape(r: dict) -> str:
    """How the workers were started: ``1 x `voxqueue worker` (2 processes x 8 threads)``."""
    from workers.cli import DEFAULT_THREADS

    s = r["sampler"]
    processes = [len(s.rss(g)) - (1 if len(s.rss(g)) > 1 else 0) for g in s.workers()]
    threads = r["concurrency"] or DEFAULT_THREADS
    option = "" if r["concurrency"] is None else f" -c {threads}"
    return (f"{r['workers']} x `voxqueue worker{option}`"
            f" ({'+'.join(map(str, processes))} processes x {threads} threads)")


def _worker_cpu(s) -> float:
    """CPU seconds of every worker process of a run."""
    return sum(s.cpu(g) for g in s.workers())


def _cpu(r: dict) -> None:
    s, n = r["sampler"], r["files"]
    workers = s.workers()
    worker_cpu = _worker_cpu(s)
    attributed = worker_cpu + sum(s.cpu(g) for g in ("sandbox", "postgres", "redis", "ingest", "harness"))
    say(f"  CPU per file: workers {1000 * worker_cpu / n:.1f} ms, sandbox {1000 * s.cpu('sandbox') / n:.1f} ms,"
        f" postgres backends {1000 * s.cpu('postgres') / n:.1f} ms, redis-server {1000 * s.cpu('redis') / n:.1f} ms,"
        f" ingest command {1000 * s.cpu('ingest') / n:.1f} ms, this benchmark (sampling, polling, py-spy)"
        f" {1000 * s.cpu('harness') / n:.1f} ms; sum {1000 * attributed / n:.1f} ms")
    say(machine_line(s, attributed, r["idle_load"]))
    rss = [f"{m / 2**20:.0f}" for g in workers for _, m in sorted(s.rss(g).items())]
    say(f"  worker CPU {worker_cpu:.1f}s ({', '.join(f'{s.cpu(g):.1f}' for g in workers)}),"
        f" peak RSS per process {', '.join(rss)} MiB (the command's own process first, then each"
        f" worker process); peak PostgreSQL connections to the run's database"
        f" {s.peak_count.get('postgres', 0)} (sampled)")


def _latency_and_database(r: dict) -> None:
    lat, x, n = r["outcome"]["latencies"], r["xact"], r["files"]
    note = ("every file is enqueued at once: mostly queueing" if r["mode"] == "live"
            else "includes the time before the workers started")
    say(f"  ingest -> result latency (jobs.created_at -> checks.finished_at): p50 {num(percentile(lat, 0.5), 2)}s,"
        f" p95 {num(percentile(lat, 0.95), 2)}s, max {num(max(lat, default=None), 2)}s ({note})")
    _timeline(r)
    say(f"  PostgreSQL per file: {x['xact_commit'] / n:.1f} commits, {x['xact_rollback'] / n:.1f} rollbacks,"
        f" {x['sessions'] / n:.2f} new connections ({x['sessions']} in all),"
        f" {x['tup_updated'] / n:.1f} rows updated, {x['tup_fetched'] / n:.1f} rows fetched")
    st = r["sandbox_stats"]
    say(f"  sandbox: {st['vendor_requests'].get('soe')} SOE requests, peak {st['peak_rps'].get('soe')}"
        f" in one second, faults {st['faults'] or 'none'}")


def _timeline(r: dict, bucket: float = 0.5) -> None:
    """Where the run's seconds went: the first job recorded, the first and last results (seconds
    from the clock's start: the workers ready, then ``voxqueue ingest`` started), and the results
    in each half second, so a slow start or a long tail shows as such."""
    o, t0 = r["outcome"], r["t0_utc"]
    if not o["finished"] or not o["created"]:
        return
    at = sorted((f - t0).total_seconds() for f in o["finished"])
    per = [0] * (int(at[-1] // bucket) + 1)
    for t in at:
        per[max(0, int(t // bucket))] += 1
    say(f"  timeline from the clock's start: first job recorded {(min(o['created']) - t0).total_seconds():+.2f}s,"
        f" first result {at[0]:+.2f}s, last {at[-1]:+.2f}s; results per {bucket:g}s: {' '.join(map(str, per))}")


PROFILE_MARKERS = (  # (label, a frame that marks it); a sample counts for every label it has
    ("SOE task (evaluate), inclusive", "evaluate (tasks/soe.py"),
    ("  claim: UPDATE … RETURNING + read the job", "take_lease (tasks/lifecycle.py"),
    ("  renew: checkpoint after each chunk", "renew (tasks/lifecycle.py"),
    ("  _store: scores + job status", "_store (tasks/soe.py"),
    ("  shared rate limit (Redis EVALSHA per chunk)", "take (tasks/ratelimit.py"),
    ("  vendor call (sign + HTTP + parse)", "TencentApiClient.call (vendors/tencent.py"),
    ("    TC3 signing", "signed_headers (vendors/tencent.py"),
    ("SQLAlchemy, anywhere", "sqlalchemy/"),
    ("psycopg, anywhere", "psycopg/"),
    ("pool pre-ping", "_do_ping_w_event"),
    ("urllib3/http.client, anywhere", "urllib3/"),
    ("redis-py, anywhere", "redis/"),
    ("logging, anywhere", "logging/__init__"),
    ("Celery/kombu outside the task body", None),
)


def _has(stack: str, marker: str | None) -> bool:
    if marker is None:
        return "evaluate (tasks/soe.py" not in stack and ("celery/" in stack or "kombu/" in stack)
    return marker in stack


def summarize_profile(path: Path, top: int = 12) -> None:
    """Where worker 0 held the GIL (py-spy --gil raw output: Python CPU time)."""
    inclusive: dict[str, int] = {}
    leaves: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        leaf = stack.rsplit(";", 1)[-1]
        leaves[leaf] = leaves.get(leaf, 0) + n
        for label, marker in PROFILE_MARKERS:
            if _has(stack, marker):
                inclusive[label] = inclusive.get(label, 0) + n
    if not total:
        say("  py-spy: no samples")
        return
    say(f"  py-spy --gil on worker 0 ({total} samples holding the GIL), inclusive share:")
    for label, _ in PROFILE_MARKERS:
        say(f"    {100 * inclusive.get(label, 0) / total:5.1f}%  {label}")
    say("  hottest leaf frames:")
    for leaf, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:top]:
        say(f"    {100 * n / total:5.1f}%  {leaf}")
