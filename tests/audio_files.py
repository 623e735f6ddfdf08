"""Audio made in the tests with PyAV (FFmpeg): a tone in any container SOE cannot take, and the
reference decode that says what SOE must receive for it.

The expected scores of a converted file are ``sandbox.soe.score`` of :func:`reference_pcm`: the
file decoded here, in a few lines of PyAV of the tests' own (FFmpeg's decoder, then its
resampler to 16 kHz mono signed 16-bit), not by ``tasks.decoder``. The sandbox scores the bytes
it reassembles, so a pipeline that sent anything else (the file itself, another rate, a channel
dropped instead of mixed) gets other scores, and the sandbox's ``audio_sha256`` of the session
differs from this decode's.
"""

from __future__ import annotations

import hashlib
import math
import wave
from fractions import Fraction
from pathlib import Path

import av

# suffix -> (container, codec)
FORMATS = {
    ".m4a": ("mp4", "aac"),
    ".aac": ("adts", "aac"),
    ".ogg": ("ogg", "libopus"),  # the wheel's FFmpeg has no libvorbis
    ".mp3": ("mp3", "libmp3lame"),
    ".wma": ("asf", "wmav2"),
    ".amr": ("amr", "libopencore_amrnb"),
}
# What some encoders insist on: (sample rate, channels, bit rate)
_ENCODER_NEEDS = {"libopus": (48000, None, None), "wmav2": (None, None, 128_000),
                  "libopencore_amrnb": (8000, 1, 12_200)}


def tone(seconds: float, *, rate: int = 44100, channels: int = 2, freq: float = 440.0, seed: int = 0) -> bytes:
    """Signed 16-bit interleaved samples of a tone (each channel a little apart, varied by ``seed``).
    One second is computed and repeated: a whole number of hertz repeats seamlessly."""
    second = bytearray()
    step = 2 * math.pi * round(freq + 7 * seed) / rate
    for n in range(rate):
        for c in range(channels):
            second += int(9000 * math.sin(step * n + c)).to_bytes(2, "little", signed=True)
    whole, frames = divmod(int(rate * seconds), rate)
    return bytes(second) * whole + bytes(second[: frames * 2 * channels])


def write_wav(path: Path, seconds: float, *, rate: int = 44100, channels: int = 2, width: int = 2,
              freq: float = 440.0, seed: int = 0) -> Path:
    pcm = tone(seconds, rate=rate, channels=channels, freq=freq, seed=seed)
    if width != 2:  # 8-bit is unsigned, 24/32-bit little-endian: widen or narrow each sample
        samples = [int.from_bytes(pcm[i:i + 2], "little", signed=True) for i in range(0, len(pcm), 2)]
        pcm = b"".join(bytes([(s >> 8) + 128]) if width == 1 else (s << (8 * width - 16)).to_bytes(
            width, "little", signed=True) for s in samples)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


def write_tone(path: Path, seconds: float, *, rate: int = 44100, channels: int = 2, freq: float = 440.0,
               seed: int = 0) -> Path:
    """A tone encoded in the container and codec of ``path``'s suffix (:data:`FORMATS`)."""
    container, codec = FORMATS[path.suffix]
    source = write_wav(path.with_suffix(".src.wav"), seconds, rate=rate, channels=channels, freq=freq, seed=seed)
    try:
        _transcode(source, path, container, codec)
    finally:
        source.unlink()
    return path


def _transcode(source: Path, target: Path, container: str, codec: str) -> None:
    with av.open(str(source)) as inp, av.open(str(target), "w", format=container) as out:
        audio = inp.streams.audio[0]
        rate, channels, bit_rate = _ENCODER_NEEDS.get(codec, (None, None, None))
        channels = channels or audio.channels
        stream = out.add_stream(codec, rate=rate or audio.rate, layout="mono" if channels == 1 else "stereo")
        ctx = stream.codec_context
        if bit_rate:
            ctx.bit_rate = bit_rate
        ctx.open()  # its frame size is known once open
        resampler = av.AudioResampler(format=ctx.format.name, layout=ctx.layout.name, rate=ctx.sample_rate)
        fifo, written = av.AudioFifo(), 0
        for frame in _and_flush(inp.decode(audio)):
            for converted in resampler.resample(frame):
                converted.pts = None
                fifo.write(converted)
            size = ctx.frame_size or 1024
            while fifo.samples >= size or (frame is None and fifo.samples):
                block = fifo.read(min(size, fifo.samples))
                block.pts, block.time_base = written, Fraction(1, ctx.sample_rate)
                written += block.samples
                out.mux(stream.encode(block))
        out.mux(stream.encode(None))


def _and_flush(frames):
    yield from frames
    yield None


def reference_pcm(path: Path) -> bytes:
    """What SOE must receive for ``path``: FFmpeg's decode, resampled to 16 kHz mono s16."""
    parts = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for frame in [*container.decode(stream), None]:
            for out in resampler.resample(frame):
                parts.append(bytes(out.planes[0])[: 2 * out.samples])
    return b"".join(parts)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zero_crossings_per_second(pcm: bytes, rate: int = 16000, threshold: int = 1000) -> float:
    """Sign changes of 16-bit mono samples per second, past +-``threshold`` (so a codec's noise
    near zero counts none): twice a tone's frequency."""
    samples = [int.from_bytes(pcm[i:i + 2], "little", signed=True) for i in range(0, len(pcm) - 1, 2)]
    changes, side = 0, 0
    for value in samples:
        now = 1 if value > threshold else -1 if value < -threshold else side
        changes += side != 0 and now != side
        side = now
    return changes / (len(samples) / rate)
