"""Hostile audio, generated (never committed): the files an attacker uploads to a decoder.

Channels 0-255, sample rates 1 Hz-4.29 GHz, bits per sample 0-64, every container the decoder
reads, and headers that lie about sizes and formats. Each case is a few hundred bytes to a few
hundred kilobytes; `hostile_corpus(folder)` writes them all and returns their paths.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

CHANNELS = (0, 1, 2, 7, 8, 9, 16, 64, 65, 255)
RATES = (0, 1, 7, 1000, 3999, 8000, 15999, 16000, 44100, 96001, 192000, 768001, 2**32 - 1)
BITS = (0, 1, 4, 8, 12, 16, 24, 32, 33, 64)
WAVE_FORMATS = {"pcm": 1, "float": 3, "alaw": 6, "mulaw": 7, "unknown": 0x1234}


def wav(
    channels: int,
    rate: int,
    bits: int,
    n_frames: int = 400,
    fmt: int = 1,
    data_size: int | None = None,
    riff_size: int | None = None,
) -> bytes:
    """A RIFF/WAVE file with exactly these header fields; the data is a quiet ramp."""
    width = max(bits // 8, 1)
    data = (np.arange(n_frames * channels * width) % 251).astype(np.uint8).tobytes()
    block = channels * bits // 8
    header = struct.pack("<HHIIHH", fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    body = b"WAVEfmt " + struct.pack("<I", 16) + header + b"data"
    body += struct.pack("<I", len(data) if data_size is None else data_size) + data
    size = len(body) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", size) + body


def header_lies() -> dict[str, bytes]:
    ok = wav(1, 16000, 16)
    return {
        "data-longer-than-file": wav(1, 16000, 16, data_size=0xFFFFFFF0),
        "data-size-zero": wav(1, 16000, 16, data_size=0),
        "riff-size-zero": wav(1, 16000, 16, riff_size=0),
        "riff-size-huge": wav(1, 16000, 16, riff_size=0xFFFFFFFF),
        "block-align-zero": ok[:32] + struct.pack("<H", 0) + ok[34:],
        "byte-rate-zero": ok[:28] + struct.pack("<I", 0) + ok[32:],
        "fmt-chunk-cut": ok[:24],
        "no-data-chunk": ok[:36],
        "fmt-size-huge": ok[:16] + struct.pack("<I", 0x7FFFFFFF) + ok[20:],
        "header-only": b"RIFF\x00\x00\x00\x00WAVE",
        "text": b"hello, this is not audio",
        "one-byte": b"\x00",
    }


def flac_claiming(audio: np.ndarray, sample_rate: int, path: Path, **fields: int) -> bytes:
    """A FLAC whose STREAMINFO claims other values (rate, channels, bits, total samples)."""
    sf.write(path, audio, sample_rate, format="FLAC")
    data = bytearray(path.read_bytes())
    at = 8 + 10  # "fLaC", the block header, then min/max block size and min/max frame size
    packed = int.from_bytes(data[at : at + 8], "big")  # rate 20, channels-1 3, bits-1 5, n 36
    rate_, channels, bits, total = (
        packed >> 44, (packed >> 41 & 7) + 1, (packed >> 36 & 31) + 1, packed & (2**36 - 1)
    )  # fmt: skip
    rate_ = fields.get("rate", rate_)
    channels = fields.get("channels", channels)
    bits = fields.get("bits", bits)
    total = fields.get("total", total)
    packed = rate_ << 44 | (channels - 1) << 41 | (bits - 1) << 36 | total
    data[at : at + 8] = packed.to_bytes(8, "big")
    return bytes(data)


def containers(folder: Path) -> dict[str, Path]:
    """The same short tone in each container and codec libsndfile writes, at rates and channel
    counts that each container allows but few recordings have."""
    written = {}
    rng = np.random.default_rng(0)
    cases = [
        ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"),
        ("mp3", "MP3", "MPEG_LAYER_III"), ("aiff", "AIFF", "PCM_24"), ("au", "AU", "ULAW"),
        ("caf", "CAF", "ALAC_16"), ("w64", "W64", "DOUBLE"), ("rf64", "RF64", "PCM_U8"),
        ("voc", "VOC", "PCM_16"), ("sd2", "SD2", "PCM_16"), ("wavex", "WAVEX", "FLOAT"),
        ("irca", "IRCAM", "PCM_32"), ("nist", "NIST", "PCM_16"), ("mat", "MAT5", "DOUBLE"),
    ]  # fmt: skip
    for suffix, container, subtype in cases:
        for channels, rate in ((1, 16000), (2, 48000), (8, 15999), (6, 96001)):
            audio = 0.3 * rng.standard_normal((rate // 4, channels))
            path = folder / f"{container.lower()}-{subtype.lower()}-{channels}ch-{rate}.{suffix}"
            try:
                sf.write(path, audio, rate, format=container, subtype=subtype)
            except (sf.LibsndfileError, ValueError, TypeError, RuntimeError):
                path.unlink(missing_ok=True)  # this container does not take this combination
                continue
            written[path.name] = path
    loud = folder / "float-1e30.wav"
    sf.write(loud, np.full((16000, 1), 1e30), 16000, subtype="FLOAT")
    written[loud.name] = loud
    return written


def hostile_corpus(folder: Path) -> list[Path]:
    """Every hostile case as a file in `folder` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, bytes] = {}
    for channels in CHANNELS:
        cases[f"wav-{channels}ch"] = wav(channels, 16000, 16)
    for rate in RATES:
        cases[f"wav-{rate}hz"] = wav(1, rate, 16)
        cases[f"wav-2ch-{rate}hz"] = wav(2, rate, 16, n_frames=4000)
    for bits in BITS:
        for name, fmt in WAVE_FORMATS.items():
            cases[f"wav-{name}-{bits}bit"] = wav(1, 16000, bits, fmt=fmt)
    cases["wav-8ch-15999hz-float"] = wav(8, 15999, 32, n_frames=16000, fmt=3)
    cases["wav-255ch-96001hz"] = wav(255, 96001, 16, n_frames=400)
    cases.update(header_lies())
    tone = (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    scratch = folder / "scratch.flac"
    for name, fields in {
        "flac-claims-1hz": {"rate": 1}, "flac-claims-655350hz": {"rate": 655350},
        "flac-claims-8ch": {"channels": 8}, "flac-claims-32bit": {"bits": 32},
        "flac-claims-2**36-samples": {"total": 2**36 - 1}, "flac-claims-0hz": {"rate": 0},
    }.items():  # fmt: skip
        cases[name] = flac_claiming(tone, 16000, scratch, **fields)
    scratch.unlink()
    paths = []
    for name, data in cases.items():
        path = folder / f"{name}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths + list(containers(folder).values())
