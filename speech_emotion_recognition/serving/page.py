"""The demo page (Gradio): record or upload speech, see the six probabilities and, for
recordings longer than one window, the emotions over time."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from speech_emotion_recognition.plots import timeline_figure
from speech_emotion_recognition.serving.service import EmotionService, UploadError

log = logging.getLogger(__name__)


class Page(gr.Blocks):
    """Blocks whose configuration (served at `/config` and inside `/`) leaves out Gradio's
    version: nothing on the page needs it, and it tells an attacker which flaws to try."""

    def get_config_file(self) -> dict:
        config = super().get_config_file()
        config.pop("version", None)
        return config


def describe(service: EmotionService) -> str:
    """The heading: the model's name and, for a release, what its reports say: the speaker
    k-fold spread of its recipe where it was run, and the one split of the release itself."""
    text = f"# Speech emotion recognition\n\nModel **{service.model}**"
    figures = service.release_figures
    if figures and "kfold" in figures:
        cv = figures["kfold"]
        text += (
            f": accuracy **{cv['accuracy']['mean']:.2f} ± {cv['accuracy']['sd']:.2f}** "
            f"(UA {cv['ua']['mean']:.2f} ± {cv['ua']['sd']:.2f}) on speakers it never heard, "
            f"over {cv['runs']} speaker folds of its training recipe; this release scores "
            f"{figures['accuracy']:.2f} on its own {figures['n_clips']} test clips"
        )
    elif figures:
        text += (
            f": accuracy {figures['accuracy']:.2f} (UA {figures['ua']:.2f}) on one split of "
            f"{figures['n_clips']} test clips, not yet cross-validated"
        )
    return (
        text + ". Recordings unlike its training corpora can score much lower.\n\n"
        "Record from the microphone or upload a file (wav, flac, ogg, mp3). "
        "Emotions: "
        + ", ".join(service.predictor.class_names)
        + ". Programs: `POST /predict` ([docs](/docs))."
    )


def build_page(service: EmotionService, examples: Sequence[str] = ()) -> gr.Blocks:
    names = service.predictor.class_names

    def predict(path: str | None) -> tuple[dict, gr.Plot]:
        if not path:
            raise gr.Error("Record or upload a clip first.", print_exception=False)
        try:
            answer = service.predict(Path(path), Path(path).name)
        except UploadError as error:
            log.info("page prediction refused: %s", error.message)
            raise gr.Error(error.message, print_exception=False) from None
        label = {name: answer[name] for name in names}
        segments = answer["segments"]
        if len(segments) < 2:
            return label, gr.Plot(value=None, visible=False)
        figure = timeline_figure(answer["path"], answer["duration"], segments, names)
        return label, gr.Plot(value=figure, visible=True)

    # The page's files (uploads, recordings, example copies) live in the server's own folder,
    # swept by the server (page_files.py), not by Gradio's cache cleaner, which also deleted
    # the example copies.
    with Page(title="Speech emotion recognition", analytics_enabled=False) as page:
        gr.Markdown(describe(service))
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="speech")
                button = gr.Button("Predict", variant="primary", elem_id="predict")
            with gr.Column():
                label = gr.Label(num_top_classes=len(names), label="emotion", elem_id="label")
        timeline = gr.Plot(label="emotions over time", visible=False)
        present = [e for e in examples if Path(e).is_file()]
        if present:
            gr.Examples(present, inputs=audio)
        # The page's own endpoint, not a public one: programs use POST /predict.
        button.click(predict, inputs=audio, outputs=[label, timeline], api_visibility="private")
    return page
