"""Emotions on a stream: audio arrives in chunks of any size, events leave as soon as the file
rules of speech.py settle them, so a file streamed in pieces gets the windows `inference.py
segments=true` gives it.

The same steps as for a file: silero-vad's frame probabilities (the detector is causal; each
stream keeps its own state), silero's own rules turning them into segments, pauses up to
`merge_gap_seconds` merged, windows cut by `speech.spans`. What a stream cannot know is the
file's peak, so the detector hears the audio scaled by the peak so far; the first words of a
stream whose loudest moment comes later can move a boundary by a frame or two. A stream has no
second look (it never ends to say a file had no region), so a gate set to review the second
look's files (`speech.gate_reviews=weak`) never acts on it; one that reviews every file heard
(`all`) hears the stream's audio up to where a region's first window would end, at most one
window of it, before the region is announced: it listens again each second until it accepts,
has heard that whole window or the region ends, and a refused region is dropped without events.

Nothing is reported that later audio could change: a region's start once it is surely speech,
the windows of a long region as soon as their audio is in, a short region's one window once
`merge_gap_seconds` of silence (plus padding and minimum speech) have passed after it, its end
with its last window. Plain numpy and torch: the server, `listen.py` and the tests share it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from speech_emotion_recognition.audio import crop_or_pad
from speech_emotion_recognition.predict.adapt import RunningCentre
from speech_emotion_recognition.predict.gate import holds_speech
from speech_emotion_recognition.predict.predictor import Predictor, segment_row
from speech_emotion_recognition.predict.speech import (
    DETECTOR_RATE,
    FRAME,
    Span,
    SpeechConfig,
    detector,
    end_threshold,
    frame_probabilities,
    merge,
    segments,
    spans,
)


@dataclass(frozen=True)
class SpeechEvent:
    """Speech started or ended, at `sample` of the stream."""

    kind: str  # "speech_start" | "speech_end"
    sample: int


@dataclass(frozen=True)
class WindowReady:
    """A model window whose audio is complete: the model's turn."""

    span: Span
    audio: np.ndarray


@dataclass
class _Region:
    start: int
    end: int  # exact when final, else the least it can still become
    final: bool
    speech: bool | None = True  # the gate's verdict; None while it is still listening
    reviewed: int = -1  # the last sample the gate heard of it
    emitted: list[int] = field(default_factory=list)  # starts of the windows sent on


class SpeechStream:
    """One stream's detector state, recent audio and the regions not yet reported in full.

    `feed` takes samples (float32 at 16 kHz, any chunk size) and returns what they settled, in
    order: SpeechEvent and WindowReady items; `finish` settles the rest at the end. Audio is
    kept only as far back as a window still to come can reach.
    """

    def __init__(self, config: SpeechConfig, sample_rate: int = DETECTOR_RATE) -> None:
        if not config.vad:
            raise ValueError("a stream needs speech detection: speech.vad=true")
        if sample_rate != DETECTOR_RATE:
            raise ValueError(f"streams are {DETECTOR_RATE} Hz, got {sample_rate}")
        self.config = config
        self.rate = sample_rate
        self.window = int(config.window_seconds * sample_rate)
        self.hop = int(config.hop_seconds * sample_rate)
        self.pad = int(config.pad_seconds * sample_rate)
        self.gap = int(config.merge_gap_seconds * sample_rate)
        self.min_speech = int(config.min_speech_seconds * sample_rate)
        # a region can still grow or merge until this long after its end (plus one frame)
        self.settle = self.gap + self.pad + self.min_speech + FRAME
        # this many frames below the lower threshold end any segment (silero's state is clean)
        self.quiet_frames = max(
            math.ceil(config.min_silence_seconds * sample_rate / FRAME) + 2,
            math.ceil(2 * self.pad / FRAME) + 1,
        )
        self.low = end_threshold(config.threshold)
        self.gated = config.gate is not None and config.gate_reviews == "all"
        self.silence = 10 ** (config.digital_silence_dbfs / 20)
        self._detector = detector()
        self._audio = np.zeros(0, np.float32)  # samples from `_offset` on
        self._offset = 0
        self._received = 0
        self._scored = 0  # samples the detector has heard (whole frames)
        self._peak = 0.0
        self._probabilities: list[float] = []  # frames from `_origin` on
        self._origin = 0
        self._last_speech = -1  # last frame at or above the threshold
        self._regions: list[_Region] = []  # announced, not yet ended
        self._ended = -1  # start of the last region that ended
        self._finished = False

    @property
    def received(self) -> int:
        """Samples fed so far."""
        return self._received

    @property
    def buffered_seconds(self) -> float:
        """The audio kept: as far back as a window still to come can reach."""
        return len(self._audio) / self.rate

    def feed(self, samples: np.ndarray) -> list[SpeechEvent | WindowReady]:
        if self._finished:
            raise ValueError("the stream has finished")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._audio = np.concatenate([self._audio, samples])
        self._received += len(samples)
        whole = (self._received - self._scored) // FRAME * FRAME
        self._score(whole)
        return self._settle(ended=False)

    def finish(self) -> list[SpeechEvent | WindowReady]:
        """The end of the stream: the last partial frame is scored (padded, as for a file)."""
        if self._finished:
            return []
        self._score(self._received - self._scored)
        self._finished = True
        return self._settle(ended=True)

    def _score(self, n: int) -> None:
        if n <= 0:
            return
        start = self._scored - self._offset
        audio = self._audio[start : start + n]
        self._peak = max(self._peak, float(np.abs(audio).max()))
        if self._peak > self.silence:  # as a file: scaled to the peak, here the peak so far
            audio = audio * (10 ** (self.config.peak_dbfs / 20) / self._peak)
        found = frame_probabilities(audio, self._detector)
        first = self._origin + len(self._probabilities)
        high = [i for i, p in enumerate(found) if p >= self.config.threshold]
        if high:
            self._last_speech = first + high[-1]
        self._probabilities.extend(found)
        self._scored += len(found) * FRAME

    def _settle(self, ended: bool) -> list[SpeechEvent | WindowReady]:
        heard = self._received if ended else self._scored
        origin = self._origin * FRAME
        found = segments(self._probabilities, heard - origin, self.config)
        ongoing = bool(found) and not ended and found[-1]["end"] + origin >= heard
        shifted = [{"start": f["start"] + origin, "end": f["end"] + origin} for f in found]
        regions = merge(shifted, self.gap)
        events: list[SpeechEvent | WindowReady] = []
        all_final = True
        for i, (start, end) in enumerate(regions):
            if start <= self._ended:
                continue  # reported in full already
            last = i == len(regions) - 1
            in_progress = ongoing and last
            if in_progress:  # its end is at least past its last frame of speech
                end = min(heard, (self._last_speech + 1) * FRAME + self.pad)
            final = ended or not last or (not ongoing and heard >= end + self.settle)
            all_final = all_final and final
            region = next((r for r in self._regions if r.start == start), None)
            if region is None:
                # an ongoing segment silero may still drop as shorter than minimum speech
                unsure = in_progress and end - start - 2 * self.pad <= self.min_speech
                if unsure:
                    continue
                region = _Region(start, end, final, speech=None if self.gated else True)
                self._regions.append(region)
                if region.speech:
                    events.append(SpeechEvent("speech_start", start))
            region.end, region.final = end, final
            if region.speech is None and self._review(region, heard):
                events.append(SpeechEvent("speech_start", start))
        for region in list(self._regions):
            events.extend(self._windows(region, ended))
        self._forget(all_final)
        return events

    def _review(self, region: _Region, heard: int) -> bool:
        """The gate on the window of stream audio that ends where the region's first window
        would (as far as it is heard; a file's gate hears up to its whole 5 s clip the same
        way), scaled as the detector heard it: True once it accepts; refused for good once it
        has heard that whole window or the region has ended."""
        upto = min(heard, region.start + self.window)
        whole = region.final or upto == region.start + self.window
        if not whole and region.reviewed >= 0 and upto - region.reviewed < self.rate:
            return False
        region.reviewed = upto
        begin = max(upto - self.window, self._offset)
        audio = self._audio[begin - self._offset : upto - self._offset]
        if self._peak > self.silence:
            audio = audio * (10 ** (self.config.peak_dbfs / 20) / self._peak)
        first = max(begin // FRAME - self._origin, 0)
        frames = self._probabilities[first : max(upto // FRAME - self._origin, first)]
        if holds_speech(audio, frames, self.config.gate):
            region.speech = True
        elif whole:
            region.speech = False
        return bool(region.speech)

    def _windows(self, region: _Region, ended: bool) -> list[SpeechEvent | WindowReady]:
        if not region.speech:  # the gate is listening, or refused it: ends without a word
            if region.final:
                self._regions.remove(region)
                self._ended = region.start
            return []
        if region.final:
            n_samples = self._received if ended else 1 << 62  # the end clamps only at the end
            cut = spans([(region.start, region.end)], n_samples, self.window, self.hop)
        elif region.end - region.start > self.window:  # long and growing: the hop windows
            starts = range(region.start, region.end - self.window + 1, self.hop)
            cut = [Span(s, s, s + self.window) for s in starts]
        else:
            return []
        events: list[SpeechEvent | WindowReady] = []
        for span in cut:
            if span.start in region.emitted:
                continue
            if not ended and span.start + self.window > self._received:
                return events  # its audio is not all here yet
            audio = crop_or_pad(self._audio, self.window, span.start - self._offset)
            region.emitted.append(span.start)
            events.append(WindowReady(span, audio))
        if region.final:
            self._regions.remove(region)
            self._ended = region.start
            events.append(SpeechEvent("speech_end", region.end))
        return events

    def _forget(self, all_final: bool) -> None:
        """Drops probabilities once silero's state is clean (every region heard is final, and
        enough quiet frames follow) and audio that no window to come can reach."""
        quiet = self._probabilities[-self.quiet_frames :]
        if all_final and len(quiet) == self.quiet_frames and max(quiet) < self.low:
            drop = len(self._probabilities) - self.quiet_frames
            self._probabilities = self._probabilities[drop:]
            self._origin += drop
        # a region still to come starts after the last one heard ends (less its padding) and a
        # short one's window is centred on it
        later = max([self._origin * FRAME] + [r.end for r in self._regions[-1:]])
        reach = [later - self.pad - self.window // 2]
        for region in self._regions:
            if region.speech is False:
                continue  # refused: no window of it will come
            reach.append(region.emitted[-1] if region.emitted else region.start - self.window)
        keep = max(self._offset, min(reach))
        self._audio = self._audio[keep - self._offset :]
        self._offset = keep


def windows_of(items: list[SpeechEvent | WindowReady]) -> list[np.ndarray]:
    """The audio of the windows among `items`, in order: what the model has to hear."""
    return [item.audio for item in items if isinstance(item, WindowReady)]


def events(
    items: list[SpeechEvent | WindowReady],
    probabilities: np.ndarray | None,
    rate: int,
    names: list[str],
    centre: RunningCentre | None = None,
) -> list[dict]:
    """JSON-ready events: `probabilities` has one row per window among `items`, in order.
    A window's fields are those `inference.py segments=true` writes for a file's segment; with
    a `centre` (adapt=speaker) they are its adapted answer, plus the model's `unadapted_label`
    and whether the window was `adapted` (not while the centre warms up)."""
    adapted: list[bool] = []
    if centre is not None and probabilities is not None:
        original = probabilities
        probabilities, adapted = centre(probabilities)
    found = iter([] if probabilities is None else probabilities)
    result, window = [], 0
    for item in items:
        if isinstance(item, WindowReady):
            event = {"type": "window", **segment_row(item.span, next(found), rate, names)}
            if adapted:
                event["unadapted_label"] = names[int(original[window].argmax())]
                event["adapted"] = adapted[window]
            result.append(event)
            window += 1
        else:
            result.append({"type": item.kind, "time": round(item.sample / rate, 3)})
    return result


def stream_events(
    predictor: Predictor,
    config: SpeechConfig,
    chunks: Iterable[np.ndarray],
    batch_size: int = 16,
    centre: RunningCentre | None = None,
) -> Iterator[dict]:
    """One stream through the engine, synchronously (listen.py, the tests): each chunk's
    settled windows go through the model together, events come out in order."""
    stream = SpeechStream(config, predictor.sample_rate)
    rate, names = predictor.sample_rate, predictor.class_names

    def settled() -> Iterator[list[SpeechEvent | WindowReady]]:
        for chunk in chunks:
            yield stream.feed(chunk)
        yield stream.finish()

    for items in settled():
        audio = windows_of(items)
        found = predictor.probabilities(audio, batch_size) if audio else None
        yield from events(items, found, rate, names, centre)
