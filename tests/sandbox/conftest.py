"""Fixtures for the sandbox tests: a real sandbox on a real socket, driven by ``requests``
with our TC3 signer (``vendors.tc3``). Credentials are generated per test session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import requests

from sandbox.core import SandboxConfig
from sandbox.server import SandboxThread
from tests.sandbox.helpers import TencentCaller
from vendors.tc3 import Credentials


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    return Credentials("AKID" + secrets.token_hex(16), secrets.token_hex(20))


@pytest.fixture
def config(credentials: Credentials) -> SandboxConfig:
    return SandboxConfig(
        tencent_secret_id=credentials.secret_id, tencent_secret_key=credentials.secret_key, seed=1
    )


@pytest.fixture
def sandbox(config: SandboxConfig) -> Iterator[SandboxThread]:
    with SandboxThread(config) as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # never route 127.0.0.1 through a proxy
        yield session


@pytest.fixture
def caller(
    sandbox: SandboxThread, credentials: Credentials, http: requests.Session
) -> TencentCaller:
    return TencentCaller(sandbox.url, credentials, http)
