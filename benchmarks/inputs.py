"""Synthetic WAV files and manifests."""

from __future__ import annotations

import csv
import math
import os
import random
import wave
from pathlib import Path

WORDS = ["red", "green", "the quick brown fox", "good morning", "she sells sea shells", "hello world"]


def write_wav(path: Path, size_bytes: int, seed: int) -> Path:
    """A 16 kHz mono 16-bit WAV of about ``size_bytes`` bytes, content differing per seed."""
    rng = random.Random(seed)
    samples = max(1, (size_bytes - 44) // 2)
    freq = rng.uniform(120, 400)
    period = [int(8000 * math.sin(2 * math.pi * freq * n / 16000)) for n in range(1600)]
    noise = rng.randbytes(samples)  # one byte of noise per sample, cheap and seed-dependent
    frames = bytearray(samples * 2)
    for n in range(samples):
        value = period[n % 1600] + noise[n] - 128
        frames[2 * n:2 * n + 2] = value.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(frames))
    return path


def make_files(folder: Path, count: int, size_bytes: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_wav(folder / f"f{i:05}.wav", size_bytes, seed=i) for i in range(count)]


def ref_text(i: int) -> str:
    return WORDS[i % len(WORDS)]


def write_manifest(path: Path, audio: list[Path], rows: int, service: str = "soe") -> Path:
    """``rows`` rows (id, audio, ref_text, services=``service``) cycling over ``audio``."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "audio", "ref_text", "eval_mode", "services"])
        for i in range(rows):
            writer.writerow([f"r{i:06}", os.path.relpath(audio[i % len(audio)], path.parent),
                             ref_text(i), "sentence", service])
    return path
