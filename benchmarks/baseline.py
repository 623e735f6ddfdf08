"""The seed document's sequential SOE loop, with the official SDK, against the sandbox."""

from __future__ import annotations

import base64
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import say


@dataclass
class Env:
    """The SOE scenario's environment: the sandbox's port and the credentials it checks."""

    base: dict[str, str]
    port: int
    secret_id: str
    secret_key: str
    logs: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def baseline_seed_loop(env: Env, files: list[Path], refs: list[str], chunk_bytes: int) -> dict:
    """The seed document's TransmitOralProcessWithInit example, once per file, as written.

    Deviations, all needed to run it here: the endpoint is the sandbox over plain
    HTTP, the credentials are the sandbox's, ``file``/``RefText`` come from the
    file list, and ``print(json_resp)`` writes to a null sink (the JSON string is
    still built). The body of ``one_file`` is the seed's code and stays as it is.
    """
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.soe.v20180724 import models, soe_client

    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    errors = calls = 0

    def one_file(file: Path, text: str) -> None:
        nonlocal errors, calls
        try:
            slice_num = chunk_bytes  # the seed: 10 * 1024
            SessionId = str(uuid.uuid1())
            cred = credential.Credential(env.secret_id, env.secret_key)
            httpProfile = HttpProfile(protocol="http")
            httpProfile.reqMethod = "POST"
            httpProfile.reqTimeout = 30
            httpProfile.endpoint = f"127.0.0.1:{env.port}"
            clientProfile = ClientProfile()
            clientProfile.signMethod = "TC3-HMAC-SHA256"
            clientProfile.unsignedPayload = True
            clientProfile.httpProfile = httpProfile
            client = soe_client.SoeClient(cred, "", clientProfile)
            with open(file, "rb") as f:
                content = f.read()
                content_len = len(content)
            pkg_num = content_len / slice_num + (content_len % slice_num != 0)
            cur_pos = 0
            for j in range(int(pkg_num)):
                if j == int(pkg_num) - 1:
                    send_content = content[cur_pos: content_len]
                    cur_pos = content_len
                    IsEnd = 1
                else:
                    send_content = content[cur_pos: cur_pos + slice_num]
                    cur_pos += slice_num
                    IsEnd = 0
                base64_data = base64.b64encode(send_content).decode()
                req = models.TransmitOralProcessWithInitRequest()
                req.SeqId = j + 1
                req.IsEnd = IsEnd
                req.VoiceFileType = 3
                req.VoiceEncodeType = 1
                req.UserVoiceData = base64_data
                req.RefText = text
                req.WorkMode = 0
                req.EvalMode = 1
                req.ScoreCoeff = 1
                req.SessionId = SessionId
                req.StorageMode = 0
                req.SentenceInfoEnabled = 0
                req.ServerType = 0
                req.IsAsync = 0
                req.IsQuery = 0
                req.TextMode = 0
                resp = client.TransmitOralProcessWithInit(req)
                calls += 1
                json_resp = resp.to_json_string()
                print(json_resp, file=sink)
            client.request.conn._session.close()
        except TencentCloudSDKException as err:
            errors += 1
            print(err, file=sink)

    cpu0, t0 = time.process_time(), time.perf_counter()
    for file, text in zip(files, refs):
        one_file(file, text)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sink.close()
    return {"files": len(files), "calls": calls, "errors": errors, "wall": wall, "cpu": cpu}


def run_baseline(env: Env, args, files: list[Path], refs: list[str]) -> float:
    """Run and print the seed loop on ``--baseline-files`` files; its files/s."""
    n_base = len(files) if args.baseline_files <= 0 else min(args.baseline_files, len(files))
    base = baseline_seed_loop(env, files[:n_base], refs[:n_base], args.chunk_bytes)
    base_fps = base["files"] / base["wall"]
    say(f"baseline (seed loop, official SDK, sequential): {base['files']} files, {base['calls']} calls,"
        f" {base['errors']} errors in {base['wall']:.2f}s -> {base_fps:.2f} files/s,"
        f" {base['calls'] / base['wall']:.1f} chunks/s, {1000 * base['wall'] / base['calls']:.1f} ms per call"
        f" ({args.latency_ms:g} ms of it sandbox latency), client CPU {1000 * base['cpu'] / base['files']:.1f} ms/file")
    say(f"baseline for all {len(files)} files: {len(files) / base_fps:.1f}s"
        + (f" (EXTRAPOLATED from {n_base} files)" if n_base < len(files) else " (measured)"))
    return base_fps


def sdk_pool(env: Env, files: list[Path], refs: list[str], chunk_bytes: int, threads: int) -> dict:
    """The machine's ceiling for this work: ``threads`` threads of the official SDK, each with one
    client of its own (keep-alive), sending the same files as the seed loop sends them (chunk by
    chunk, the seed's request fields), every file once, in this one process. Nothing recorded,
    nothing resumable: what the vendor calls alone cost on this machine."""
    import queue
    import threading

    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.soe.v20180724 import models, soe_client

    work: queue.Queue = queue.Queue()
    for item in zip(files, refs):
        work.put(item)
    counts = {"calls": 0, "errors": 0}
    lock = threading.Lock()

    def client() -> soe_client.SoeClient:
        http = HttpProfile(protocol="http", endpoint=f"127.0.0.1:{env.port}", reqMethod="POST",
                           reqTimeout=30, keepAlive=True)
        profile = ClientProfile(signMethod="TC3-HMAC-SHA256", httpProfile=http)
        profile.unsignedPayload = True
        creds = credential.Credential(env.secret_id, env.secret_key)
        return soe_client.SoeClient(creds, "", profile)

    def one_file(c: soe_client.SoeClient, file: Path, text: str) -> int:
        content, session = file.read_bytes(), str(uuid.uuid1())
        pieces = [content[i:i + chunk_bytes] for i in range(0, len(content), chunk_bytes)]
        for j, piece in enumerate(pieces):
            req = models.TransmitOralProcessWithInitRequest()
            req.SeqId, req.IsEnd = j + 1, int(j == len(pieces) - 1)
            req.VoiceFileType, req.VoiceEncodeType = 3, 1
            req.UserVoiceData = base64.b64encode(piece).decode()
            req.RefText, req.WorkMode, req.EvalMode, req.ScoreCoeff = text, 0, 1, 1
            req.SessionId, req.ServerType, req.IsAsync, req.IsQuery = session, 0, 0, 0
            c.TransmitOralProcessWithInit(req).to_json_string()
        return len(pieces)

    def run() -> None:
        c = client()
        while True:
            try:
                file, text = work.get_nowait()
            except queue.Empty:
                return
            try:
                sent, failed = one_file(c, file, text), 0
            except TencentCloudSDKException:
                sent, failed = 0, 1
            with lock:
                counts["calls"] += sent
                counts["errors"] += failed

    pool = [threading.Thread(target=run, name=f"sdk-{i}") for i in range(threads)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"files": len(files), "wall": wall, "cpu": cpu, **counts}


def run_sdk_pool(env: Env, args, files: list[Path], refs: list[str]) -> float | None:
    """Run and print the bare SDK client pool on every file; its files/s."""
    if args.pool_threads <= 0:
        return None
    r = sdk_pool(env, files, refs, args.chunk_bytes, args.pool_threads)
    fps = (r["files"] - r["errors"]) / r["wall"]
    say(f"ceiling (bare pool of {args.pool_threads} official-SDK client threads, one process,"
        f" keep-alive): {r['files']} files, {r['calls']} calls, {r['errors']} errors in"
        f" {r['wall']:.2f}s -> {fps:.2f} files/s, {r['calls'] / r['wall']:.1f} chunks/s,"
        f" client CPU {1000 * r['cpu'] / r['files']:.1f} ms/file")
    return fps
