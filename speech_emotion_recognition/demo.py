"""The demo page (Gradio): record or upload speech, see the six probabilities and, for
recordings longer than one window, the emotions over time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.plots import timeline_figure
from speech_emotion_recognition.service import EmotionService, UploadError


def describe(service: EmotionService) -> str:
    """The heading: the model's name and, for a release, its figures from its report."""
    text = f"# Speech emotion recognition\n\nModel **{service.model}**"
    figures = service.release_figures
    if figures:
        text += (
            f": test accuracy **{figures['accuracy']:.3f}** (UA {figures['ua']:.3f}, macro-F1 "
            f"{figures['macro_f1']:.3f}) on {figures['n_clips']} clips of speakers it never "
            "heard in training"
        )
    return (
        text + ".\n\nRecord from the microphone or upload a file (wav, flac, ogg, mp3). "
        "Emotions: " + ", ".join(EMOTIONS) + "."
    )


def build_demo(service: EmotionService, examples: Sequence[str] = ()) -> gr.Blocks:
    def predict(path: str | None) -> tuple[dict, gr.Plot]:
        if not path:
            raise gr.Error("Record or upload a clip first.")
        try:
            answer = service.predict(Path(path), Path(path).name)
        except UploadError as error:
            raise gr.Error(error.message) from error
        label = {name: answer[name] for name in EMOTIONS}
        segments = answer["segments"]
        if len(segments) < 2:
            return label, gr.Plot(value=None, visible=False)
        figure = timeline_figure(answer["path"], answer["duration"], segments, EMOTIONS)
        return label, gr.Plot(value=figure, visible=True)

    # Gradio keeps uploads and recordings in its temporary folder: files older than 10 minutes
    # are deleted every 10 minutes.
    with gr.Blocks(
        title="Speech emotion recognition", analytics_enabled=False, delete_cache=(600, 600)
    ) as demo:
        gr.Markdown(describe(service))
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="speech")
                button = gr.Button("Predict", variant="primary", elem_id="predict")
            with gr.Column():
                label = gr.Label(num_top_classes=len(EMOTIONS), label="emotion", elem_id="label")
        timeline = gr.Plot(label="emotions over time", visible=False)
        present = [e for e in examples if Path(e).is_file()]
        if present:
            gr.Examples(present, inputs=audio)
        button.click(predict, inputs=audio, outputs=[label, timeline], api_name="predict")
    return demo
