"""The producers' API on a real socket (its own event loop in a thread), with a token."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass

import requests

from tasks.tokens import create
from workers.reporting import write_report

TIMEOUT = 30


@dataclass
class ApiClient:
    url: Callable[[str], str]
    token: str

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def post_jobs(self, batch: str, rows, *, token: str | None = None, params=None) -> requests.Response:
        return requests.post(self.url(f"/v1/batches/{batch}/jobs"), json=rows, params=params,
                             headers=self.headers(token), timeout=TIMEOUT)

    def get(self, path: str, *, token: str | None = None, **kwargs) -> requests.Response:
        return requests.get(self.url(path), headers=self.headers(token), timeout=TIMEOUT, **kwargs)

    def post(self, path: str, *, token: str | None = None, **kwargs) -> requests.Response:
        return requests.post(self.url(path), headers=self.headers(token), timeout=TIMEOUT, **kwargs)


def new_token(name: str) -> str:
    return create(name)


def cli_report(batch: str, fmt: str = "json") -> str:
    """What `voxqueue report --batch` writes."""
    out = io.StringIO()
    write_report(out, fmt, batch=batch)
    return out.getvalue()


def cli_report_objects(batch: str) -> list[dict]:
    return json.loads(cli_report(batch))
