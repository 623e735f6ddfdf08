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
