"""SOE's limits per evaluation mode, checked before anything is sent.

Audio longer than the mode takes and reference text with more words than it takes are
refused at ingest with the reason (a local file's length comes from its header, or from
probing it: :mod:`tasks.probe`), and the worker checks the length again for what ingest
could not measure (a URL, a container that does not say). The numbers are settings
(``VOXQUEUE_SOE_MAX_SECONDS_*``, ``VOXQUEUE_SOE_MAX_WORDS_*``); the defaults are the
vendor's published limits, the word limits marked uncertain in vendor-notes.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.settings import Settings, get_settings

MODE_NAMES = {0: "word", 1: "sentence", 2: "paragraph", 3: "free"}
# One word per English word (letters, digits, apostrophes) or per Chinese character, as SOE
# scores them (one entry of ``Words`` each): the sandbox counts the same way.
_WORD = re.compile(r"[\u3400-\u9fff]|[A-Za-z0-9']+")


def words(text: str) -> int:
    return len(_WORD.findall(text))


@dataclass(frozen=True)
class SoeLimits:
    seconds: dict[int, float]  # eval mode -> longest audio
    words: dict[int, int]  # eval mode -> most words of reference text (modes not listed: no limit)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> SoeLimits:
        s = settings or get_settings()
        return cls(
            {0: s.soe_max_seconds_word, 1: s.soe_max_seconds_sentence,
             2: s.soe_max_seconds_paragraph, 3: s.soe_max_seconds_free},
            {1: s.soe_max_words_sentence, 2: s.soe_max_words_paragraph},
        )

    def max_seconds(self, mode: int) -> float:
        return self.seconds.get(mode, max(self.seconds.values()))

    def audio_error(self, seconds: float, mode: int, *, at_least: bool = False) -> str | None:
        """Why audio of ``seconds`` (``at_least``: decoding stopped there) is too long for ``mode``."""
        limit = self.max_seconds(mode)
        if seconds <= limit:
            return None
        name = MODE_NAMES.get(mode, str(mode))
        length = f"over {limit:g} s" if at_least else _duration(seconds)
        return (f"audio is {length} long; SOE's {name} mode takes at most {limit:g} s "
                f"(VOXQUEUE_SOE_MAX_SECONDS_{name.upper()})")

    def text_error(self, text: str, mode: int, what: str = "ref_text") -> str | None:
        """Why ``text`` has too many words for ``mode``, or None."""
        limit = self.words.get(mode)
        count = words(text) if limit else 0
        if count <= (limit or 0):
            return None
        name = MODE_NAMES.get(mode, str(mode))
        return (f"{what} has {count} words; SOE's {name} mode takes at most {limit} "
                f"(VOXQUEUE_SOE_MAX_WORDS_{name.upper()})")


def _duration(seconds: float) -> str:
    """``2 min 0.0 s``, ``59.9 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.1f} s"
