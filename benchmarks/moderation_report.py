"""Printing the moderation scenario: achieved rate against the shared limit, from the sandbox's counters."""

from __future__ import annotations

from benchmarks.common import num, say
from benchmarks.sampling import machine_line

SERVICE = "shumei"


def steady_state(per_second: dict[str, int]) -> list[int]:
    """Requests in each full second at the sandbox: every epoch second from the first to the last
    that saw a request (none counts 0), without those two, which are partial."""
    if not per_second:
        return []
    seconds = sorted(int(s) for s in per_second)
    return [int(per_second.get(str(s), 0)) for s in range(seconds[0] + 1, seconds[-1])]


def headroom(limit: float) -> float | None:
    """The share of ``limit`` the shared limiter paces at (tasks.ratelimit), if it says."""
    try:
        from tasks.ratelimit import paced
    except ImportError:
        return None
    return paced(limit) / limit


def report_moderation(r: dict, args) -> None:
    _setup(r, args)
    _rate(r, args.moderation_qps)
    _totals(r)
    _cpu(r)


def _setup(r: dict, args) -> None:
    say(f"moderation: {r['n']} submissions to {SERVICE} (one request per check; WAVs of {r['file_bytes']} bytes"
        f" sent RAW), shared limit VOXQUEUE_SHUMEI_QPS={args.moderation_qps:g} (other vendors' limits out of the"
        f" way), {r['workers']} workers x {args.moderation_concurrency} threads (threads pool), Redis + PostgreSQL,"
        f" sandbox latency {args.latency_ms:g} ms, sandbox {r['favoured']}")
    say(f"  results neither polled (no beat) nor called back; `voxqueue ingest` first ({r['ingest_wall']:.2f}s,"
        " not counted), then the workers drain the queue")


def _rate(r: dict, limit: float) -> None:
    st = r["stats"]
    full = steady_state(st.get("per_second", {}).get(SERVICE, {}))
    pace = headroom(limit)
    paced = f"; the limiter paces at {100 * pace:.0f}% of this limit" if pace else ""
    if full:
        rate = sum(full) / len(full)
        say(f"  achieved rate: {rate:.1f} submissions/s = {rate / limit:.3f} of the {limit:g}/s limit (steady"
            f" state: mean of the {len(full)} full second(s) at the sandbox, the first and last, partial, seconds"
            f" excluded; per second {', '.join(map(str, full))}){paced}")
    else:
        say(f"  achieved rate: n/a (no full second between the first and the last at the sandbox: too few"
            f" submissions){paced}")
    peak = int(st.get("peak_rps", {}).get(SERVICE, 0))
    verdict = "within the limit" if peak <= limit else "EXCEEDS THE LIMIT"
    say(f"  sandbox peak in any sliding 1-second window: {peak} requests (limit {limit:g}: {verdict});"
        f" sandbox event-loop lag at most {st.get('max_loop_lag_ms')} ms")


def _totals(r: dict) -> None:
    st, (with_id, failed) = r["stats"], r["recorded"]
    count = int(st["requests"].get(f"{SERVICE}.submit", 0))
    duplicates = sum(st.get("duplicates", {}).get(SERVICE, {}).values())
    say(f"  total: {r['n']} submissions in {r['wall']:.2f}s (from the first worker ready to the sandbox"
        f" counting the last, polled every 0.1 s) -> {r['n'] / r['wall']:.1f} submissions/s")
    say(f"  sandbox: {count} {SERVICE}.submit requests, {duplicates} repeated keys, faults {st['faults'] or 'none'};"
        f" database: {with_id}/{r['n']} checks with a vendor task id, {failed} failed")


def _cpu(r: dict) -> None:
    s, n = r["sampler"], r["sampled"]
    workers = s.workers()
    worker_cpu = sum(s.cpu(g) for g in workers)
    attributed = worker_cpu + sum(s.cpu(g) for g in ("sandbox", "postgres", "redis", "harness"))
    per = (lambda cpu: num(1000 * cpu / n if n else None))
    say(f"  CPU per submission ({n} sent while sampled): workers {per(worker_cpu)} ms, sandbox"
        f" {per(s.cpu('sandbox'))} ms, postgres backends {per(s.cpu('postgres'))} ms, redis-server"
        f" {per(s.cpu('redis'))} ms, this benchmark (sampling, polling) {per(s.cpu('harness'))} ms;"
        f" sum {per(attributed)} ms")
    say(machine_line(s, attributed, r["idle_load"]))
    rss = [max(s.rss(g).values(), default=0) / 2**20 for g in workers]
    say(f"  worker CPU {worker_cpu:.1f}s ({', '.join(f'{s.cpu(g):.1f}' for g in workers)}),"
        f" peak RSS per worker {', '.join(f'{m:.0f}' for m in rss)} MiB")
