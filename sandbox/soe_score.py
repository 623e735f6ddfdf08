"""Deterministic SOE scores: a pure function of the audio bytes and the inputs.

Tests elsewhere compute the expected scores of a file with ``sandbox.soe.score``.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

BYTES_PER_MS = 32  # 16 kHz, 16-bit, mono
_WORD = re.compile(r"[\u3400-\u9fff]|[A-Za-z0-9']+")


def score(audio: bytes, ref_text: str, eval_mode: int, score_coeff: float) -> dict[str, Any]:
    """Deterministic SOE-shaped scores for ``audio`` read against ``ref_text``.

    Seeded by sha256 of the inputs; one word per English word or Chinese character of
    ``ref_text``; harsher (lower accuracy) as ``score_coeff`` goes from 1.0 to 4.0.
    ``SuggestedScore = PronAccuracy * PronCompletion * (2 - PronCompletion)`` as documented.
    """
    seed = hashlib.sha256(
        f"{ref_text}\0{eval_mode}\0{float(score_coeff)!r}\0".encode() + audio
    ).digest()
    rng = random.Random(int.from_bytes(seed, "big"))
    words = _words(rng, _WORD.findall(ref_text), len(audio) // BYTES_PER_MS, 0.75 + score_coeff / 4)
    accuracy = _mean([w["PronAccuracy"] for w in words]) if words else rng.uniform(40, 95)
    fluency = _mean([w["PronFluency"] for w in words]) if words else rng.uniform(0.5, 1)
    completion = round(rng.uniform(0.7, 1.0), 3)
    return {
        "SuggestedScore": round(accuracy * completion * (2 - completion), 2),
        "PronAccuracy": round(accuracy, 2),
        "PronFluency": round(fluency, 3),
        "PronCompletion": completion,
        "Words": words,
        "SentenceInfoSet": [],
    }


def _words(
    rng: random.Random, tokens: list[str], duration_ms: int, harshness: float
) -> list[dict[str, Any]]:
    n = len(tokens)
    return [
        {
            "Word": word,
            "PronAccuracy": round(max(0.0, 100 - (100 - rng.uniform(60, 100)) * harshness), 2),
            "PronFluency": round(rng.uniform(0.6, 1.0), 3),
            "MatchTag": 0,
            "MemBeginTime": i * duration_ms // n,
            "MemEndTime": (i + 1) * duration_ms // n,
            "PhoneInfos": [],
        }
        for i, word in enumerate(tokens)
    ]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def keyword_scores(audio: bytes, keywords: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KeywordEvaluate's ``KeywordScores``: :func:`score` of each keyword."""
    return [_keyword_score(audio, kw) for kw in keywords]


def _keyword_score(audio: bytes, keyword: dict[str, Any]) -> dict[str, Any]:
    ref = keyword["RefText"]
    s = score(
        audio, ref, int(keyword.get("EvalMode") or 0), float(keyword.get("ScoreCoeff") or 1.0)
    )
    return {
        "Keyword": ref,
        **{
            k: s[k]
            for k in ("PronAccuracy", "PronFluency", "PronCompletion", "Words", "SuggestedScore")
        },
    }
