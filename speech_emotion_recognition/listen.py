"""Emotions as someone speaks: `python speech_emotion_recognition/listen.py` reads the default
microphone and prints a line per window; `input=FILE [realtime=true]` plays a recording through
the same engine at the pace it was recorded (how the tests and the latency figures run it).

Each window line carries its latency: the time from the end of the window's audio (when its
last sample arrived) to its event. Part of it can be waiting for the file rules (stream.py):
a region's last window comes once `merge_gap_seconds` of silence have followed it, so that a
stream gets a file's windows; `waited_ms` says how much.
"""

from __future__ import annotations

import csv
import logging
import queue
import statistics
import sys
import time
from collections.abc import Iterator

import hydra
import numpy as np
from omegaconf import DictConfig

from speech_emotion_recognition.audio import AudioError, load_audio
from speech_emotion_recognition.cli import check_arguments
from speech_emotion_recognition.predict.adapt import RunningCentre
from speech_emotion_recognition.predict.predictor import (
    Predictor,
    checkpoint_error,
    engine_file,
    load_classifier,
    resolve_device,
    resolve_precision,
)
from speech_emotion_recognition.predict.speech import SpeechConfig
from speech_emotion_recognition.predict.stream import SpeechStream, WindowReady, events, windows_of

log = logging.getLogger(__name__)
PORTAUDIO = (
    "the microphone needs PortAudio: `sudo apt-get install libportaudio2` (Debian, Ubuntu) or "
    "`brew install portaudio` (macOS); or play a file with input=FILE"
)


def recording(audio: np.ndarray, chunk: int, rate: int, realtime: bool) -> Iterator[np.ndarray]:
    """A decoded file in chunks, each released when its last sample would have been spoken."""
    start = time.monotonic()
    for begin in range(0, len(audio), chunk):
        piece = audio[begin : begin + chunk]
        if realtime:
            time.sleep(max(0.0, start + (begin + len(piece)) / rate - time.monotonic()))
        yield piece


class NoMicrophone(Exception):
    """The microphone cannot be opened: the message says what to install."""


def microphone(chunk: int, rate: int, seconds: float | None) -> Iterator[np.ndarray]:
    """The default input device, mono at the model's rate, until `seconds` or Ctrl-C."""
    try:
        import sounddevice
    except (ImportError, OSError):  # sounddevice raises OSError when PortAudio is missing
        raise NoMicrophone(PORTAUDIO) from None
    arrived: queue.Queue[np.ndarray] = queue.Queue()
    with sounddevice.InputStream(
        samplerate=rate, channels=1, dtype="float32", blocksize=chunk,
        callback=lambda data, *_: arrived.put(data[:, 0].copy()),
    ):  # fmt: skip
        log.info("Listening on %s (Ctrl-C stops)", sounddevice.query_devices(kind="input")["name"])
        heard = 0
        try:
            while seconds is None or heard < seconds * rate:
                piece = arrived.get()
                heard += len(piece)
                yield piece
        except KeyboardInterrupt:
            return


def line(event: dict) -> str:
    if event["type"] != "window":
        return f"{event['time']:8.2f} s  {event['type'].replace('_', ' ')}"
    return (
        f"{event['start']:8.2f} - {event['end']:6.2f} s  {event['label']:<9} "
        f"{event['confidence']:.2f}   latency {event['latency_ms']:.0f} ms"
        + (
            f" (waited {event['waited_ms']:.0f} ms for the pause rule)"
            if event["waited_ms"]
            else ""
        )
    )


def run(cfg: DictConfig) -> int:
    if error := checkpoint_error(cfg.ckpt):
        log.error(error)
        return 2
    device = resolve_device(cfg.device)
    try:
        onnx_path = engine_file(cfg.ckpt, cfg.engine, device, cfg.onnx)
    except (FileNotFoundError, ValueError) as error:  # a missing file or an unknown engine
        log.error(error)
        return 2
    speech = SpeechConfig(**cfg.speech)
    predictor = Predictor(
        load_classifier(cfg.ckpt),
        device,
        resolve_precision(cfg.precision, device),
        onnx_path,
        speech.shift_seconds,
    )
    rate, names = predictor.sample_rate, predictor.class_names
    stream = SpeechStream(speech, rate)
    centre = RunningCentre() if cfg.adapt == "speaker" else None
    chunk = int(cfg.chunk_seconds * rate)
    if cfg.input:
        try:
            audio = load_audio(str(cfg.input), rate)
        except AudioError as error:
            log.error("%s: %s", cfg.input, error)
            return 1
        chunks = recording(audio, chunk, rate, cfg.realtime)
    else:
        chunks = microphone(chunk, rate, cfg.seconds)
    writer = None
    if cfg.csv:
        target = open(cfg.csv, "w", newline="")  # noqa: SIM115 - open for the whole run
        fields = ["type", "time", "start", "end", "label", "confidence", *names]
        fields += ["unadapted_label", "adapted"] if centre else []
        fields += ["latency_ms", "waited_ms"]
        writer = csv.DictWriter(target, fields)
        writer.writeheader()
    latencies = []
    start = time.monotonic()

    def report(items: list, arrived: int) -> None:
        """`arrived`: samples in the chunk that settled `items`."""
        audio = windows_of(items)
        found = predictor.probabilities(audio, cfg.batch_size) if audio else None
        now = time.monotonic()
        for item, event in zip(items, events(items, found, rate, names, centre), strict=True):
            if isinstance(item, WindowReady):
                audio_end = min(item.span.start + stream.window, stream.received)
                event["latency_ms"] = round(1000 * (now - start - audio_end / rate), 1)
                # settled by a later chunk than the one that brought its last sample
                waited = 0 if audio_end > stream.received - arrived else stream.received - audio_end
                event["waited_ms"] = round(1000 * waited / rate, 1)
                latencies.append(event["latency_ms"])
            print(line(event), flush=True)
            if writer:
                writer.writerow(event)

    try:
        for piece in chunks:
            report(stream.feed(piece), len(piece))
        report(stream.finish(), 0)
    except NoMicrophone as error:
        log.error("%s", error)
        return 2
    finally:
        if writer:
            target.close()
    if latencies and (cfg.realtime or not cfg.input):
        log.info(
            "%d windows; latency from the end of a window's audio to its event: median %.0f ms, "
            "max %.0f ms", len(latencies), statistics.median(latencies), max(latencies),
        )  # fmt: skip
    return 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="listen")
def main(cfg: DictConfig) -> None:
    sys.exit(run(cfg))


if __name__ == "__main__":
    check_arguments("listen")
    main()
