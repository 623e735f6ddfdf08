"""Decoding what SOE cannot take into 16 kHz mono 16-bit PCM (PyAV), and probing it at ingest."""

from __future__ import annotations

import io
import tempfile

import pytest

from tasks import decoder
from tasks.audio import PCM, WAV, chunk_bytes_for, chunk_count, prepare
from tests.audio_files import (
    FORMATS,
    reference_pcm,
    write_tone,
    write_wav,
    zero_crossings_per_second,
)


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_format_decodes_to_a_16k_mono_tone_of_the_right_pitch_and_length(tmp_path, suffix):
    path = write_tone(tmp_path / f"tone{suffix}", 1.5, freq=440.0)
    out = io.BytesIO()
    written = decoder.decode(str(path), out)
    pcm = out.getvalue()
    assert written == len(pcm) and len(pcm) % 2 == 0
    assert abs(len(pcm) / decoder.BYTES_PER_SECOND - 1.5) < 0.1  # encoders add a frame of priming
    assert zero_crossings_per_second(pcm) == pytest.approx(2 * 440, rel=0.05)  # resampled, not sped up
    assert pcm == reference_pcm(path)  # the same bytes every time: a resumed session sends the same chunks


def test_a_wav_at_another_rate_and_channel_count_is_mixed_down_and_resampled(tmp_path):
    path = write_wav(tmp_path / "cd.wav", 2.0, rate=44100, channels=2, freq=300.0)
    out = io.BytesIO()
    decoder.decode(str(path), out)
    assert len(out.getvalue()) == 2 * 16000 * 2
    assert zero_crossings_per_second(out.getvalue()) == pytest.approx(600, rel=0.03)


def test_decoding_stops_once_past_the_limit(tmp_path):
    path = write_tone(tmp_path / "long.m4a", 5.0)
    with pytest.raises(decoder.TooLong) as info:
        decoder.decode(str(path), io.BytesIO(), max_bytes=2 * decoder.BYTES_PER_SECOND)
    assert 2 * decoder.BYTES_PER_SECOND < info.value.args[0] < 3 * decoder.BYTES_PER_SECOND


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_probe_gives_the_length_without_decoding_the_file(tmp_path, suffix):
    path = write_tone(tmp_path / f"tone{suffix}", 3.0)
    probed = decoder.probe(str(path))
    assert probed.seconds == pytest.approx(3.0, abs=0.15)
    assert probed.codec


@pytest.mark.parametrize("data", [
    b"\x00\x00\x00\x20ftypM4A " + b"\x00garbage" * 500,  # an MP4 box and nothing readable after it
    b"OggS" + bytes(range(256)) * 8,
    b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x13" * 3000,
    b"",
])
def test_what_no_decoder_reads_is_unreadable_with_a_reason(tmp_path, data):
    path = tmp_path / "bad.m4a"
    path.write_bytes(data)
    with pytest.raises(decoder.Unreadable) as info:
        decoder.probe(str(path))
    assert str(info.value) and str(tmp_path) not in str(info.value)  # FFmpeg's words, never the path
    with pytest.raises(decoder.Unreadable):
        decoder.decode(str(path), io.BytesIO())


def test_sixteen_k_mono_wav_and_raw_pcm_go_as_they_are(tmp_path):
    wav = write_wav(tmp_path / "native.wav", 0.5, rate=16000, channels=1)
    with prepare(str(wav)) as audio:
        assert (audio.voice_file_type, audio.converted, audio.size) == (WAV, False, wav.stat().st_size)
        assert audio.stream.read() == wav.read_bytes()
        assert audio.seconds == pytest.approx(0.5)
    raw = tmp_path / "voice.pcm"
    raw.write_bytes(b"\x01\x02" * 16000)
    with prepare(str(raw)) as audio:
        assert (audio.voice_file_type, audio.converted, audio.seconds) == (PCM, False, 1.0)


def test_other_audio_is_prepared_as_decoded_raw_pcm(tmp_path):
    path = write_tone(tmp_path / "phone.m4a", 1.0)
    with prepare(str(path)) as audio:
        assert (audio.voice_file_type, audio.converted) == (PCM, True)
        pcm = audio.stream.read()
    assert pcm == reference_pcm(path) and audio.size == len(pcm)
    assert audio.seconds == pytest.approx(len(pcm) / 32000)


def test_decoded_audio_goes_to_a_temporary_file_that_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "spool"))
    (tmp_path / "spool").mkdir()
    path = write_tone(tmp_path / "phone.ogg", 1.0)
    with prepare(str(path)) as audio:
        audio.stream.read()
    assert list((tmp_path / "spool").iterdir()) == []


@pytest.mark.parametrize(("size", "configured", "expected"), [
    (10_000, 10240, 10240),  # one chunk
    (3000 * 10240, 10240, 10240),  # exactly 3000 chunks
    (3000 * 10240 + 1, 10240, 10242),  # one byte more: a larger, even chunk
    (9_600_000, 1024, 3200),  # 300 s of 16 kHz audio in 1 KB chunks would be 9375 chunks
    (9_600_001, 1024, 3202),
])
def test_a_file_that_would_need_more_than_3000_chunks_gets_a_larger_even_chunk(size, configured, expected):
    chunk = chunk_bytes_for(size, configured)
    assert chunk == expected and chunk % 2 == 0
    assert chunk_count(size, chunk) <= 3000
    assert chunk == configured or chunk_count(size, chunk - 2) > 3000  # no larger than it must be


def test_decodes_asked_by_many_threads_at_once_are_each_right(tmp_path):
    """A worker's threads all ask; the decoding itself runs in the decoder's own two threads."""
    from concurrent.futures import ThreadPoolExecutor

    paths = [write_tone(tmp_path / f"t{i}{suffix}", 0.5, seed=i)
             for i, suffix in enumerate([".m4a", ".ogg", ".mp3"] * 3)]

    def decoded(path):
        out = io.BytesIO()
        decoder.decode(str(path), out)
        return out.getvalue()

    with ThreadPoolExecutor(9) as pool:
        results = list(pool.map(decoded, paths))
    assert results == [reference_pcm(p) for p in paths]
    assert len(set(results)) == 9
