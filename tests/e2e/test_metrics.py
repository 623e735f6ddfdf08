"""The exporter as Prometheus sees it, through a batch with faults and a stopped worker.

Real processes: the sandbox injecting 5xx answers and throttling, two workers (one
caught mid-check and stopped with SIGSTOP), ``voxqueue exporter`` scraped over HTTP
during and after the batch, its text parsed with ``prometheus_client``'s parser. What
the exporter counts must be what the sandbox counted on its side.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_soe_pipeline import check_scores, make_manifest
from tests.pipeline import wait_until
from tests.recovery import in_flight
from workers.processes import free_port, running, voxqueue_command, wait_http

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]
JOBS = 16
FAULTS = [
    {"kind": "error5xx", "service": "soe", "rate": 0.12},
    {"kind": "throttle", "service": "soe", "rate": 0.12},
]


class Exporter:
    def __init__(self, url: str) -> None:
        self.url = url

    def scrape(self) -> dict[str, dict[tuple, float]]:
        """family sample name -> {sorted label pairs: value}"""
        text = requests.get(self.url, timeout=10).text
        found: dict[str, dict[tuple, float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = (
                    sample.value
                )
        return found


def soe(found, name: str, **labels) -> float:
    return found[name][tuple(sorted({"service": "soe", **labels}.items()))]


def vendor(found, name: str, **labels) -> float:
    return sum(
        v
        for key, v in found[name].items()
        if ("vendor", "soe") in key and all((k, w) in key for k, w in labels.items())
    )


def test_the_exporter_follows_a_batch_with_faults_and_a_stopped_worker(pipeline, tmp_path):
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, JOBS)
    port = free_port()
    proc = pipeline.stack.enter_context(
        running(
            voxqueue_command("exporter", "--port", str(port)),
            pipeline.env,
            pipeline.logs / "exporter.log",
        )
    )
    exporter = Exporter(f"http://127.0.0.1:{port}/metrics")

    # The first worker's first request is slow: it is caught holding its check, and stopped there.
    pipeline.sandbox(
        "config", {"faults": [{"kind": "slow", "service": "soe", "rate": 1.0, "slow_ms": 20000}]}
    )
    stopped = pipeline.start_worker("-c", "1", name="stopped")
    try:
        pipeline.cli("ingest", str(manifest))
        wait_http(exporter.url, proc)
        wait_until(
            lambda: 0 < in_flight() == pipeline.sandbox("stats")["faults"].get("slow"),
            30,
            interval=0.1,
        )
        os.killpg(stopped.pid, signal.SIGSTOP)  # its every process, each inside its slow request
        stopped_at = time.monotonic()
        held = in_flight()
        during = exporter.scrape()
        assert soe(during, "voxqueue_checks", state="running") == held
        assert soe(during, "voxqueue_checks", state="pending") == JOBS - held
        assert (
            during["voxqueue_queue_messages"][(("queue", "soe"),)] >= JOBS - 2 * held
        )  # taken or reserved
        assert soe(during, "voxqueue_oldest_check_age_seconds", state="pending") > 0

        pipeline.sandbox("config", {"seed": 11, "faults": FAULTS})
        pipeline.start_worker("-c", "4")

        def all_but_the_stopped_ones():
            found = exporter.scrape()
            finished = soe(found, "voxqueue_checks", state="done") + soe(
                found, "voxqueue_checks", state="failed"
            )
            return found if finished == JOBS - held else None

        found = wait_until(all_but_the_stopped_ones, 30, interval=0.2)
        stuck_for = time.monotonic() - stopped_at
        assert (
            soe(found, "voxqueue_checks", state="running") == held
        )  # the stopped worker's, until housekeeping
        assert soe(found, "voxqueue_oldest_check_age_seconds", state="running") >= stuck_for - 0.5

        pipeline.wait("readings", 40)  # housekeeping sends the stopped worker's check again
        after = exporter.scrape()
        stats = pipeline.sandbox("stats")
    finally:
        pipeline.kill_worker(stopped)

    check_scores(pipeline.report("readings"), folder)
    for state in ("pending", "running"):
        assert soe(after, "voxqueue_checks", state=state) == 0
        assert soe(after, "voxqueue_oldest_check_age_seconds", state=state) == 0
    assert soe(after, "voxqueue_checks", state="done") == JOBS
    assert after["voxqueue_queue_messages"][(("queue", "soe"),)] == 0
    faults = stats["faults"]
    print(
        f"\nsandbox faults {faults}, requests {stats['vendor_requests']['soe']}; "
        f"the stopped worker's check seen running {stuck_for:.1f} s after the stop"
    )
    assert faults.get("error5xx", 0) > 0 and faults.get("throttle", 0) > 0  # the seed gives both
    assert vendor(after, "voxqueue_vendor_errors_total", reason="http_5xx") == faults["error5xx"]
    assert vendor(after, "voxqueue_vendor_throttles_total", source="vendor") == faults["throttle"]
    assert vendor(after, "voxqueue_vendor_requests_total") == stats["vendor_requests"]["soe"]
    assert vendor(after, "voxqueue_vendor_retries_total") > 0
    recovered = after["voxqueue_housekeeping_recoveries_total"]
    assert recovered[(("kind", "dead_holder"),)] == held  # the checks the stopped worker held
    assert after["voxqueue_exporter_source_up"] == {
        (("source", "database"),): 1,
        (("source", "broker"),): 1,
        (("source", "limits"),): 1,
    }
