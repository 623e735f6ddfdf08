"""The report of a large batch: seconds to write it as an HTML page, as JSON, and as the table
on a terminal, and the page's size.

    python benchmarks/report_page.py [--jobs 10000] [--database-url URL] [--screenshot PNG]

The batch is synthetic (SOE, GME and Shumei results with the spread of a real one, some failed,
some rejected), written straight into a fresh SQLite database (or the one given, which must be
migrated and is written to). ``--screenshot`` opens the page in headless Chromium and saves a
picture of it (the README's is of ``--jobs 300``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select

from models import Batch, Check, Job
from models.db import engine_for
from models.migrate import upgrade
from workers.processes import voxqueue_command

BATCH = "lesson-7"
CHECK = dict.fromkeys(
    [
        "verdict",
        "labels",
        "error",
        "error_reason",
        "suggested_score",
        "pron_accuracy",
        "pron_fluency",
        "pron_completion",
    ]
) | {"chunks_sent": 0}  # one shape for executemany


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--database-url", help="a migrated database (default: a fresh SQLite file)")
    parser.add_argument("--screenshot", type=Path, help="save a picture of the page here (PNG)")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def synthetic_batch(url: str, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    with engine_for(url).begin() as conn:
        batch_id = conn.execute(
            insert(Batch).values(name=BATCH, source="benchmarks/report_page.py").returning(Batch.id)
        ).scalar_one()
        jobs, checks = [], []
        for i in range(n):
            created = now - dt.timedelta(seconds=rnd.uniform(60, 600))
            job = {
                "batch_id": batch_id,
                "key": f"s{i:05d}",
                "external_id": f"s{i:05d}",
                "seq": i + 1,
                "audio": f"s{i:05d}.wav",
                "services": ["soe", "gme", "shumei"],
                "options": {},
                "status": "done",
                "error": None,
                "verdict": None,
                "created_at": created,
            }
            jobs.append(job)
            if rnd.random() < 0.03:
                job |= {"status": "rejected", "error": "audio file not found: " + job["audio"]}
                continue
            checks.append(_job_checks(rnd, job, created))
        conn.execute(insert(Job), jobs)
        ids = dict(conn.execute(select(Job.seq, Job.id).where(Job.batch_id == batch_id)).all())
        rows = [CHECK | c | {"job_id": ids[seq]} for seq, group in checks for c in group]
        conn.execute(insert(Check), rows)


def _job_checks(rnd: random.Random, job: dict, created: dt.datetime) -> tuple[int, list[dict]]:
    done = created + dt.timedelta(seconds=rnd.lognormvariate(1.0, 0.45))
    soe = {"service": "soe", "status": "done", "finished_at": done, "chunks_sent": 3}
    if rnd.random() < 0.04:
        soe |= {
            "status": "failed",
            "error_reason": "auth",
            "error": "soe: AuthFailure.SignatureFailure: the signature is wrong (auth)",
        }
        job |= {"status": "failed", "error": soe["error"]}
    else:
        score = min(100.0, max(0.0, rnd.gauss(74, 12)))
        soe |= {
            "suggested_score": score,
            "pron_accuracy": min(100.0, score + rnd.gauss(3, 6)),
            "pron_fluency": min(1.0, max(0.0, rnd.gauss(0.82, 0.1))),
            "pron_completion": min(1.0, max(0.0, rnd.gauss(0.93, 0.06))),
        }
        if rnd.random() < 0.1:
            soe["pron_accuracy"] = -1.0
    moderation = []
    for service, labels in (("gme", ["porn", "abuse"]), ("shumei", ["ad", "politics", "moan"])):
        r = rnd.random()
        verdict = "REJECT" if r < 0.04 else "REVIEW" if r < 0.12 else "PASS"
        check = {
            "service": service,
            "status": "done",
            "verdict": verdict,
            "finished_at": done,
            "labels": [] if verdict == "PASS" else [rnd.choice(labels)],
        }
        if service == "shumei" and rnd.random() < 0.01:
            check |= {
                "status": "failed",
                "verdict": None,
                "labels": None,
                "error_reason": "throttled",
                "error": "shumei: 1902: QPS limit exceeded (throttled)",
            }
            job |= {"status": "failed", "error": check["error"]}
        moderation.append(check)
    verdicts = [c["verdict"] for c in moderation if c["verdict"]]
    job["verdict"] = next((v for v in ("REJECT", "REVIEW", "PASS") if v in verdicts), None)
    return job["seq"], [soe, *moderation]


def timed(*args: str, env: dict[str, str], stdout=subprocess.DEVNULL) -> float:
    start = time.perf_counter()
    subprocess.run(voxqueue_command(*args), env=env, stdout=stdout, check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="voxqueue-report-"))
    url = args.database_url or f"sqlite:///{work / 'report.db'}"
    if args.database_url is None:
        upgrade(url)
    start = time.perf_counter()
    synthetic_batch(url, args.jobs, args.seed)
    print(
        f"{args.jobs:,} jobs written in {time.perf_counter() - start:.1f} s ({url.split(':')[0]})"
    )
    env = dict(os.environ) | {"VOXQUEUE_DATABASE_URL": url, "VOXQUEUE_VAR_DIR": str(work / "var")}
    page = work / "report.html"
    startup = timed("status", "--batch", BATCH, env=env)
    html = timed("report", "--batch", BATCH, "--format", "html", "--output", str(page), env=env)
    as_json = timed(
        "report",
        "--batch",
        BATCH,
        "--format",
        "json",
        "--output",
        str(work / "report.json"),
        env=env,
    )
    print(f"voxqueue status (the command's start-up and one query): {startup:.2f} s")
    print(f"report --format html: {html:.2f} s, {page.stat().st_size / 1e6:.2f} MB")
    size = (work / "report.json").stat().st_size / 1e6
    print(f"report --format json: {as_json:.2f} s, {size:.2f} MB")
    from tests.workers.pty_helpers import run_on_terminal

    start = time.perf_counter()
    screen = run_on_terminal("report", "--batch", BATCH, env=env, columns=100, lines=30)
    print(
        f"report on a 100x30 terminal: {time.perf_counter() - start:.2f} s "
        f"({len(screen.lines)} lines)"
    )
    if args.screenshot:
        shoot(page, args.screenshot, work)
        print(f"screenshot: {args.screenshot}")
    print(f"files in {work}")


def shoot(page: Path, png: Path, work: Path) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={work / 'profile'}",
            "--proxy-server=127.0.0.1:1",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1160,1500",
            f"--screenshot={png.resolve()}",
            page.as_uri(),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    main()
