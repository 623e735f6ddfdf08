"""The exporter's collector against real databases (SQLite and PostgreSQL) and a real Redis,
read back as Prometheus reads it: the text format, parsed by ``prometheus_client``'s parser.

The counters are written where they happen (:mod:`tasks.metrics`): here by the code that
counts them (a housekeeping round, the webhook receiver), or as another host would.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from kombu.transport.redis import Channel
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from config.settings import get_settings, reset_settings
from models import CheckStatus
from models.base import utcnow
from models.db import transaction
from tasks import common, housekeeping, lifecycle, liveness, metrics, ratelimit
from tasks.breaker import Breaker
from tasks.ratelimit import RateLimiter
from tests.pipeline import (
    silent_server,  # noqa: F401  (a fixture)
    wait_until,
)
from tests.tasks.test_housekeeping import DEAD, beating, broker, checks, held_by, set_checks, stale  # noqa: F401
from tests.workers.webhook_helpers import Client, gme_body, make_check, serve
from vendors.errors import Disposition, VendorError
from vendors.gme import sign_callback
from workers import exporter
from workers.processes import voxqueue_command
from workers.webhooks import create_app

ROOT = Path(__file__).resolve().parents[2]


def scrape(settings=None, sources=None) -> dict[str, dict[tuple, float]]:
    """The exporter's text, parsed: family name -> {sorted label pairs: value}."""
    registry = exporter.CollectorRegistry()
    registry.register(exporter.PipelineCollector(settings or get_settings(), sources))
    text = generate_latest(registry).decode()
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(found, name: str, **labels) -> float:
    return found[name][tuple(sorted(labels.items()))]


def test_checks_by_service_and_state_and_the_oldest_waiting(database_url, redis_url, tmp_path):
    ids = checks(tmp_path, 5)  # five shumei checks, pending
    now = utcnow()
    set_checks(ids[:1], status=CheckStatus.DONE.value)
    set_checks(ids[1:2], status=CheckStatus.FAILED.value)
    set_checks(
        ids[2:3], status=CheckStatus.RUNNING.value, updated_at=now - dt.timedelta(seconds=600)
    )
    set_checks(ids[3:4], updated_at=now - dt.timedelta(seconds=120))  # pending for two minutes

    found = scrape()

    states = {
        state: value(found, "voxqueue_checks", service="shumei", state=state)
        for state in ("pending", "running", "closing", "done", "failed")
    }
    assert states == {"pending": 2, "running": 1, "closing": 0, "done": 1, "failed": 1}
    assert (
        value(found, "voxqueue_checks", service="soe", state="pending") == 0
    )  # every service, zeros too
    running = value(found, "voxqueue_oldest_check_age_seconds", service="shumei", state="running")
    pending = value(found, "voxqueue_oldest_check_age_seconds", service="shumei", state="pending")
    assert 600 <= running < 900 and 120 <= pending < 420
    assert value(found, "voxqueue_oldest_check_age_seconds", service="soe", state="running") == 0
    assert value(found, "voxqueue_exporter_source_up", source="database") == 1


def test_messages_waiting_per_queue_with_kombus_priority_sub_queues(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.rpush("soe", "a", "b", "c")
    client.rpush("gme", "d")
    client.rpush(f"gme{Channel.sep}3", "e", "f")  # a message sent with a priority
    client.hset(Channel.unacked_key, mapping={"tag1": "x", "tag2": "y"})

    found = scrape(sources={"broker": exporter.broker})

    assert value(found, "voxqueue_queue_messages", queue="soe") == 3
    assert value(found, "voxqueue_queue_messages", queue="gme") == 3
    assert value(found, "voxqueue_queue_messages", queue="housekeeping") == 0
    assert value(found, "voxqueue_unacked_messages") == 2
    assert "voxqueue_checks" not in found  # only the sources asked for


def test_counters_from_every_process_and_host_add_up(redis_url):
    throttled = VendorError(
        "soe", "RequestLimitExceeded", "slow down", disposition=Disposition.THROTTLED
    )
    for _ in range(3):
        metrics.count("vendor_requests", vendor="soe")
    metrics.vendor_error("soe", throttled)
    metrics.vendor_error(
        "soe", VendorError("soe", "http_5xx", "HTTP 503", disposition=Disposition.RETRY)
    )
    other_host = redis.Redis.from_url(redis_url)
    other_host.hincrby(metrics.KEY, metrics.field("vendor_requests", {"vendor": "soe"}), 4)
    other_host.hincrby(metrics.KEY, metrics.field("no_such_family", {}), 1)  # an older version's
    other_host.hset(metrics.KEY, "not json", 1)

    found = scrape(sources={"broker": exporter.broker})

    assert value(found, "voxqueue_vendor_requests_total", vendor="soe") == 7
    assert (
        value(found, "voxqueue_vendor_requests_total", vendor="asr") == 0
    )  # every vendor from the start
    assert (
        value(found, "voxqueue_vendor_errors_total", vendor="soe", reason="RequestLimitExceeded")
        == 1
    )
    assert value(found, "voxqueue_vendor_errors_total", vendor="soe", reason="http_5xx") == 1
    assert value(found, "voxqueue_vendor_throttles_total", vendor="soe", source="vendor") == 1
    assert value(found, "voxqueue_vendor_throttles_total", vendor="soe", source="shared_limit") == 0
    assert not any(name.startswith("voxqueue_no_such") for name in found)


def test_the_shared_limit_counts_requests_and_the_ones_it_sends_away(redis_url, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_ASR_QPS", "1")
    reset_settings()
    monkeypatch.setattr(ratelimit, "_limiter", None)
    ratelimit.take("asr", max_wait=0)
    with pytest.raises(ratelimit.Throttled):
        ratelimit.take("asr", max_wait=0)  # the next slot is a second away

    found = scrape(sources={"broker": exporter.broker})

    assert value(found, "voxqueue_vendor_requests_total", vendor="asr") == 1
    assert value(found, "voxqueue_vendor_throttles_total", vendor="asr", source="shared_limit") == 1


def test_a_request_that_waits_for_its_slot_is_counted_once(redis_url, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_TUPU_QPS", "4")  # paced at 2/s: a slot every half second
    reset_settings()
    monkeypatch.setattr(ratelimit, "_limiter", None)
    for _ in range(3):  # the first at once, the others each wait for their slot, then are admitted
        ratelimit.take("tupu", max_wait=2)

    found = scrape(sources={"broker": exporter.broker})

    assert value(found, "voxqueue_vendor_requests_total", vendor="tupu") == 3
    assert value(found, "voxqueue_vendor_throttles_total", vendor="tupu", source="shared_limit") == 0


def test_poison_checks_and_breaker_openings_are_counted(
    database_url, redis_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("VOXQUEUE_MAX_DELIVERIES", "1")
    reset_settings()
    (check_id,) = checks(tmp_path, 1)
    set_checks(
        [check_id], status=CheckStatus.RUNNING.value, lease_until=utcnow() - dt.timedelta(seconds=1)
    )
    with transaction() as conn:  # its last delivery died holding it
        lease = lifecycle.take_lease(conn, check_id, get_settings())
        assert lifecycle.poisoned(conn, lease, get_settings())
    common.unexpected("soe", KeyError("no such option"))  # an exception no rule expected
    opening = Breaker(redis.Redis.from_url(redis_url), threshold=2, prefix="test:breaker:")
    outage = VendorError("gme", "http_5xx", "HTTP 503", disposition=Disposition.RETRY)
    for _ in range(2):
        opening.record("gme", outage)

    found = scrape()

    assert value(found, "voxqueue_checks_poisoned_total", service="shumei", cause="deliveries") == 1
    assert value(found, "voxqueue_checks_poisoned_total", service="soe", cause="exception") == 1
    assert value(found, "voxqueue_checks_poisoned_total", service="soe", cause="deliveries") == 0
    assert value(found, "voxqueue_checks", service="shumei", state="failed") == 1
    assert value(found, "voxqueue_breaker_openings_total", vendor="gme") == 1


def test_housekeepings_recoveries_are_counted_by_kind(broker, tmp_path):  # noqa: F811
    ids = checks(tmp_path, 4)
    held_by(DEAD, ids[:1])  # a dead worker held it
    beating(broker, DEAD, carries=ids[1:2])  # and had received this one's message
    broker.delete(liveness.ALIVE + DEAD)
    stale(ids[2:3])  # this one's message was lost: waiting a minute, its queue empty

    housekeeping.run_round()
    found = scrape()

    kinds = {
        kind: value(found, "voxqueue_housekeeping_recoveries_total", kind=kind)
        for kind in ("dead_holder", "orphaned", "lost_message")
    }
    assert kinds == {"dead_holder": 1, "orphaned": 1, "lost_message": 1}
    assert value(found, "voxqueue_broker_losses_total") == 0
    assert (
        value(found, "voxqueue_queue_messages", queue="shumei") == 2
    )  # alone, and the two grouped


def test_the_broker_losing_its_data_is_counted(broker, tmp_path):  # noqa: F811
    ids = checks(tmp_path, 3)
    broker.delete(housekeeping.EPOCH_KEY)  # a restart without persistence

    housekeeping.run_round()
    found = scrape()

    assert value(found, "voxqueue_broker_losses_total") == 1
    assert value(found, "voxqueue_housekeeping_recoveries_total", kind="broker_loss") == len(ids)


def test_callbacks_are_counted_by_the_state_they_reached(database_url, redis_url, keys):
    make_check(database_url, "gme", "gme-task-1")
    app = create_app(
        get_settings(),
        lambda event_id: None,
        query=lambda check_id: None,
        broker_probe=lambda: None,
    )
    with serve(app) as url:
        client, body = Client(url, database_url), gme_body("gme-task-1")
        assert client.gme(body, sign_callback(body, keys["gme"])).status_code == 200
        assert client.gme(body, "0" * 40).status_code == 403  # forged: refused, not stored

        def counted():
            found = scrape(sources={"broker": exporter.broker})
            states = found.get("voxqueue_callback_events_total", {})
            return states if len(states) == 2 else None

        states = wait_until(counted, 10, interval=0.1)
    assert states == {
        (("state", "received"), ("vendor", "gme")): 1,
        (("state", "refused"), ("vendor", "gme")): 1,
    }


def test_a_source_that_cannot_be_read_is_down_and_the_others_still_answer(redis_url, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    reset_settings()
    metrics.count("breaker_openings", vendor="gme")

    found = scrape()

    assert value(found, "voxqueue_exporter_source_up", source="database") == 0
    assert value(found, "voxqueue_exporter_source_up", source="broker") == 1
    assert value(found, "voxqueue_breaker_openings_total", vendor="gme") == 1
    assert "voxqueue_checks" not in found


def test_a_broker_that_never_answers_costs_a_scrape_one_timeout(database_url, silent_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", f"redis://127.0.0.1:{silent_server}/0")
    reset_settings()

    started = time.monotonic()
    found = scrape()
    took = time.monotonic() - started

    print(f"\nscrape with a broker that never answers: {took:.1f}s")
    assert value(found, "voxqueue_exporter_source_up", source="database") == 1
    assert value(found, "voxqueue_exporter_source_up", source="broker") == 0
    assert value(found, "voxqueue_exporter_source_up", source="limits") == 0
    assert value(found, "voxqueue_exporter_source_seconds", source="limits") < 1  # not waited for again
    assert took < 10  # Prometheus's default scrape timeout: the database's families still arrive


def test_counting_never_fails_the_caller_when_redis_is_down(redis_url, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    reset_settings()
    metrics.count("vendor_requests", vendor="soe")  # no exception
    metrics.vendor_error(
        "soe", VendorError("soe", "connection", "down", disposition=Disposition.RETRY)
    )
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", redis_url)
    reset_settings()
    monkeypatch.setattr(metrics._sink, "paused_until", 0.0)  # the pause after a failure is over
    metrics.count("vendor_requests", vendor="soe")
    assert redis.Redis.from_url(redis_url).hgetall(metrics.KEY) == {
        metrics.field("vendor_requests", {"vendor": "soe"}).encode(): b"1"
    }


def count_calls() -> list[tuple[str, str, set[str]]]:
    """Every ``metrics.count/add(...)`` in the code: (where, family, label names)."""
    calls = []
    for path in ROOT.glob("[tvw]*/**/*.py"):
        if path.parts[len(ROOT.parts)] not in ("tasks", "vendors", "workers"):
            continue
        inside = path == ROOT / "tasks" / "metrics.py"
        for node in ast.walk(ast.parse(path.read_text())):
            qualified = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "metrics"
                and node.func.attr in ("count", "add")
            )
            bare = (
                inside
                and isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("count", "add")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            )
            if qualified or bare:
                name = (
                    node.args[0].value
                    if node.args and isinstance(node.args[0], ast.Constant)
                    else None
                )
                calls.append(
                    (
                        f"{path.relative_to(ROOT)}:{node.lineno}",
                        name,
                        {k.arg for k in node.keywords},
                    )
                )
    return calls


def test_every_count_in_the_code_names_a_declared_family_with_its_labels():
    calls = count_calls()
    assert len(calls) >= 10
    wrong = [
        (where, name, labels)
        for where, name, labels in calls
        if name not in metrics.FAMILIES or labels != set(metrics.FAMILIES[name].labels)
    ]
    assert wrong == []


def test_the_exporter_says_in_one_line_when_its_port_is_taken(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            voxqueue_command("exporter", "--port", str(port)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
    assert proc.returncode == 1
    line = f"voxqueue: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert proc.stderr.strip().splitlines() == [line]


def test_metric_names_follow_prometheus_conventions(redis_url):
    registry = exporter.CollectorRegistry()
    registry.register(exporter.PipelineCollector(get_settings(), {"broker": exporter.broker}))
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert all(f.name.startswith("voxqueue_") and f.documentation for f in families)
    counters = {f.name.removeprefix("voxqueue_") for f in families if f.type == "counter"}
    assert counters == set(metrics.FAMILIES)  # every declared counter is published, seeded or not
    assert all(
        s.name.endswith("_total") for f in families if f.type == "counter" for s in f.samples
    )
    assert json.loads(metrics.field("x", {"b": "1", "a": "2"})) == ["x", {"a": "2", "b": "1"}]


# -- the monitoring profile: its files name only what the exporter publishes ----------
MONITORING = ROOT / "config" / "monitoring"


def published_names() -> set[str]:
    """Every metric name the exporter publishes, as PromQL names them (counters with _total)."""
    registry = exporter.CollectorRegistry()
    registry.register(exporter.PipelineCollector(get_settings()))
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {family.name + ("_total" if family.type == "counter" else "") for family in families}


def promql_names(text: str) -> set[str]:
    import re

    return set(re.findall(r"\bvoxqueue_[a-z_]+\b", text))


def test_the_dashboard_and_the_alerts_query_only_published_metrics(database_url, redis_url):
    import yaml

    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "voxqueue.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    queried = promql_names(" ".join(exprs + [r["expr"] for r in rules]))
    published = published_names()
    assert queried - published == set()
    for name in (
        "voxqueue_checks",
        "voxqueue_queue_messages",
        "voxqueue_oldest_check_age_seconds",
        "voxqueue_vendor_errors_total",
        "voxqueue_vendor_throttles_total",
        "voxqueue_housekeeping_recoveries_total",
    ):
        assert name in queried  # a panel for each of them
    sources = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {sources["datasources"][0]["uid"]}


def test_compose_runs_the_exporter_and_prometheus_scrapes_it_in_the_monitoring_profile():
    import yaml

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    command = services["exporter"]["command"]
    assert command[:2] == ["voxqueue", "exporter"] and "profiles" not in services["exporter"]
    port = command[command.index("--port") + 1]
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text())["scrape_configs"]
    assert f"exporter:{port}" in scrape[0]["static_configs"][0]["targets"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert not source.startswith("./") or (ROOT / source).exists(), volume
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"])


def test_a_shared_limit_that_holds_work_back_is_saturated(redis_url, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_SOE_QPS", "20")
    reset_settings()
    client = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(client)  # the workers' limiter, on the broker's Redis
    time.sleep(1.01 - client.time()[1] / 1e6)  # the counts are kept per second of Redis's clock
    end = time.monotonic() + 2.0

    def sender() -> None:  # four senders want far more than 20 requests a second
        while time.monotonic() < end:
            limiter.acquire("soe", qps=20, max_wait=5)

    senders = [threading.Thread(target=sender) for _ in range(4)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    time.sleep(1.01 - client.time()[1] / 1e6)

    found = scrape(sources={"limits": exporter.limits})

    soe = {"limit": "soe", "setting": "VOXQUEUE_SOE_QPS"}
    assert value(found, "voxqueue_rate_limit_saturated", **soe) == 1
    assert value(found, "voxqueue_rate_limit_limit", **soe) == 20
    assert 0 < value(found, "voxqueue_rate_limit_rate", **soe) <= 20
    assert 0 < value(found, "voxqueue_rate_limit_held_share", **soe) < 1
    gme = {"limit": "gme", "setting": "VOXQUEUE_GME_QPS"}
    assert (value(found, "voxqueue_rate_limit_saturated", **gme),
            value(found, "voxqueue_rate_limit_rate", **gme)) == (0, 0)  # nobody called GME
    assert value(found, "voxqueue_exporter_source_up", source="limits") == 1
