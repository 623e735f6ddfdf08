"""A setting that cannot be used stops every command with one line that names the variable
and says what is wrong, never its value (it may be a secret), exit status 2."""

from __future__ import annotations

import secrets

import pytest

from tests.workers.cli_helpers import one_line_error, run

# Every command that loads the settings (all of them, through the group), and those that go on
# to load them again or read variables of their own (worker, beat, flower, webhooks, sandbox).
COMMANDS = [
    ("status",), ("report",), ("wait", "--batch", "b"), ("retry",), ("ingest", "m.csv"), ("worker",),
    ("beat",), ("flower",), ("webhooks",), ("sandbox",), ("db", "upgrade"), ("stream", "close", "x"),
    ("demo",),
]


def secret() -> str:
    return "k" + secrets.token_hex(8)  # never all digits: not an integer


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_names_the_variable_never_its_value(command):
    value = secret()
    proc = run(*command, env_extra={"VOXQUEUE_GME_BIZ_ID": value}, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert one_line_error(proc) == "voxqueue: error: VOXQUEUE_GME_BIZ_ID: must be an integer"
    assert value not in proc.stdout + proc.stderr and "input_value" not in proc.stderr


def test_a_bad_value_in_dotenv_is_reported_the_same(tmp_path):
    value = secret()
    (tmp_path / ".env").write_text(f"VOXQUEUE_GME_BIZ_ID={value}\n")
    proc = run("status", timeout=30)
    assert proc.returncode == 2
    assert one_line_error(proc) == "voxqueue: error: VOXQUEUE_GME_BIZ_ID: must be an integer"
    assert value not in proc.stdout + proc.stderr


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("VOXQUEUE_SOE_CHUNK_BYTES", "1", "must be at least 2"),
    ("VOXQUEUE_SOE_CHUNK_BYTES", "1.5", "must be an integer"),
    ("VOXQUEUE_LOG_JSON", "maybe", "must be true or false"),
    ("VOXQUEUE_SOE_QPS", "nan", "must be a positive number"),
    ("VOXQUEUE_SHUMEI_QPS", "-5", "must be a positive number"),
    ("VOXQUEUE_GME_QPS", "0", "must be a positive number"),
    ("VOXQUEUE_VENDOR_TIMEOUT", "inf", "must be a positive number"),
    ("VOXQUEUE_POLL_INTERVAL", "soon", "must be a number"),
    ("VOXQUEUE_LEASE_SECONDS", "0", "must be a positive integer"),
    ("VOXQUEUE_BROKER_WAIT_SECONDS", "-inf", "must be a number of seconds, 0 or more"),
    ("VOXQUEUE_DB_POOL_SIZE", "-1", "must be a positive integer"),
    ("VOXQUEUE_LOG_LEVEL", "loud", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("VOXQUEUE_TENCENT_SECRET_KEY", "ab\udcffcd", "is not UTF-8 text"),  # a byte 0xff in the environment
])
def test_each_kind_of_bad_value_says_what_is_wrong(name, value, problem):
    proc = run("status", env_extra={name: value}, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert one_line_error(proc) == f"voxqueue: error: {name}: {problem}"


def test_every_bad_variable_on_one_line():
    values = {"VOXQUEUE_GME_BIZ_ID": secret(), "VOXQUEUE_LOG_JSON": secret()}
    proc = run("status", env_extra=values, timeout=30)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "VOXQUEUE_GME_BIZ_ID: must be an integer" in line and "VOXQUEUE_LOG_JSON: must be true or false" in line
    assert not any(v in proc.stderr for v in values.values())


def test_a_dotenv_that_is_not_utf8_names_the_file_and_line(tmp_path):
    value = secret()
    (tmp_path / ".env").write_bytes(b"VOXQUEUE_SOE_APP_ID=app\nVOXQUEUE_TENCENT_SECRET_KEY=" + value.encode()
                                    + b"\xe9\n")  # Latin-1, as an editor might save it
    proc = run("status", timeout=30)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert line == f"voxqueue: error: {tmp_path / '.env'}: line 2 is not UTF-8 text"
    assert value not in proc.stdout + proc.stderr


@pytest.mark.parametrize(("name", "value"), [
    ("VOXQUEUE_SANDBOX_LATENCY_MS", "slow"),
    ("VOXQUEUE_SANDBOX_LATENCY_MS", "nan"),
    ("VOXQUEUE_SANDBOX_LATENCY_MS", "-5"),
    ("VOXQUEUE_SANDBOX_RESULT_DELAY_S", "inf"),
    ("VOXQUEUE_SANDBOX_SEED", "x"),
    ("VOXQUEUE_SANDBOX_FAULTS", "not json"),
])
def test_the_sandbox_names_its_own_bad_variable(name, value):
    proc = run("sandbox", "--port", "0", env_extra={name: value}, timeout=20)
    assert proc.returncode == 2, proc.stderr
    assert one_line_error(proc).startswith(f"voxqueue: error: {name}: ")
