"""The sandbox on its own: many concurrent SOE sessions straight at it from an asyncio client."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from benchmarks.baseline import Env
from benchmarks.common import say
from benchmarks.inputs import ref_text

Plan = list[tuple[bytes, dict[str, str]]]  # one session: (body, signed headers) per chunk


def signed_plans(env: Env, files: list[Path], chunk_bytes: int, sessions: int) -> list[Plan]:
    """Every request of ``sessions`` sessions, built and signed (the project's TC3 signer)."""
    from tasks.audio import iter_chunks
    from vendors.soe import SoeClient, SoeParams
    from vendors.tc3 import Credentials

    client = SoeClient(env.url, Credentials(env.secret_id, env.secret_key), region="ap-guangzhou")
    plans = []
    for i in range(sessions):
        sid, params, plan = str(uuid.uuid4()), SoeParams(ref_text(i)), []
        with files[i % len(files)].open("rb") as fh:
            for chunk in iter_chunks(fh, chunk_bytes):
                body = client.encode(client.build_transmit_with_init_params(
                    sid, chunk.seq, chunk.is_end, chunk.data, params))
                plan.append((body, client.signed_headers("TransmitOralProcessWithInit", body)))
        plans.append(plan)
    return plans


async def _send_all(url: str, plans: list[Plan], concurrency: int) -> tuple[float, int]:
    """(wall seconds, error answers) of ``concurrency`` clients taking sessions off one queue."""
    import asyncio

    import aiohttp

    queue: asyncio.Queue = asyncio.Queue()
    for plan in plans:
        queue.put_nowait(plan)
    failures = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def run() -> None:
            nonlocal failures
            while not queue.empty():
                for body, headers in queue.get_nowait():
                    async with http.post(url + "/", data=body, headers=headers) as r:
                        answer = await r.json(content_type=None)
                        failures += "Error" in answer.get("Response", {})
        t0 = time.perf_counter()
        await asyncio.gather(*(run() for _ in range(concurrency)))
        return time.perf_counter() - t0, failures


def sandbox_capacity(env: Env, files: list[Path], chunk_bytes: int, sessions: int, concurrency: int,
                     sandbox_pid: int) -> dict:
    """Sessions of the benchmark's files sent straight at the sandbox.

    Every request is built and signed before timing, so the client spends its CPU
    only on HTTP. Reports requests/s and the sandbox's own CPU per request (its
    ceiling on one core is the inverse).
    """
    import asyncio

    import psutil

    plans = signed_plans(env, files, chunk_bytes, sessions)
    sbx = psutil.Process(sandbox_pid)
    cpu0, client_cpu0 = sum(sbx.cpu_times()[:2]), time.process_time()
    wall, failures = asyncio.run(_send_all(env.url, plans, concurrency))
    return {"requests": sum(len(p) for p in plans), "sessions": sessions, "concurrency": concurrency,
            "wall": wall, "failures": failures, "sandbox_cpu": sum(sbx.cpu_times()[:2]) - cpu0,
            "client_cpu": time.process_time() - client_cpu0}


def _ceiling(cpu_per_request: float) -> str:
    """Requests a second one core would serve; "n/a" when a tiny run measured no CPU at all
    (psutil reads the kernel's ticks: a run of a few requests can read 0)."""
    return f"{1 / cpu_per_request:.0f}" if cpu_per_request > 0 else "n/a"


def run_sandbox_alone(env: Env, args, files: list[Path], chunks_per_file: int, sandbox_pid: int) -> None:
    import requests

    requests.post(env.url + "/_sandbox/reset", timeout=10)
    cap = sandbox_capacity(env, files, args.chunk_bytes, args.sandbox_sessions, args.sandbox_concurrency,
                           sandbox_pid)
    rps = cap["requests"] / cap["wall"]
    per_req = cap["sandbox_cpu"] / cap["requests"]
    say(f"sandbox alone: {cap['requests']} requests ({cap['sessions']} sessions) from"
        f" {cap['concurrency']} concurrent asyncio clients in {cap['wall']:.2f}s -> {rps:.0f} requests/s"
        f" ({rps / chunks_per_file:.0f} files/s), {cap['failures']} errors; sandbox CPU"
        f" {1000 * per_req:.2f} ms/request (one core: ~{_ceiling(per_req)} requests/s ceiling),"
        f" client CPU {1000 * cap['client_cpu'] / cap['requests']:.2f} ms/request")
    stats = requests.get(env.url + "/_sandbox/stats", timeout=10).json()
    say(f"  sandbox's own count: {stats['vendor_requests'].get('soe')} SOE requests,"
        f" peak {stats['peak_rps'].get('soe')} in one second")
