"""The demo page (Gradio): record or upload speech, see the six probabilities and, for
recordings longer than one window, the emotions over time; or talk to it live (the Live tab,
live_tab.js, streams the microphone to `/stream`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from speech_emotion_recognition.emotions import colours
from speech_emotion_recognition.plots import timeline_figure
from speech_emotion_recognition.serving.service import EmotionService, UploadError

log = logging.getLogger(__name__)
LIVE_JS = Path(__file__).with_name("live_tab.js").read_text()
LIVE_CSS = """
#live .live-label { font-size: 2em; font-weight: 600; margin: .4em 0; }
#live .live-row { display: flex; align-items: center; gap: .5em; margin: 2px 0; }
#live .live-row > span:first-child { width: 6em; }
#live .live-track { flex: 1; background: #f0f0f0; height: 14px; border-radius: 3px; }
#live .live-bar { height: 14px; width: 0; border-radius: 3px; transition: width .2s; }
#live .live-value { width: 3em; text-align: right; font-variant-numeric: tabular-nums; }
#live canvas { width: 100%; border: 1px solid #ddd; margin-top: .8em; }
#live ol { max-height: 12em; overflow-y: auto; font-variant-numeric: tabular-nums; }
"""


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
        "Record or upload a file (wav, flac, ogg, mp3), or talk to it in the **Live** tab. "
        "Emotions: "
        + ", ".join(service.predictor.class_names)
        + ". Programs: `POST /predict` ([docs](/docs)), WebSocket `/stream`."
    )


def live_tab(names: Sequence[str]) -> gr.HTML:
    """The microphone, live: what the tab shows is drawn by live_tab.js from `/stream`'s events."""
    html = (
        f"<div id='live' data-classes='{json.dumps(list(names))}' "
        f"data-colours='{json.dumps(colours(names))}'>"
        "<p>Speak and watch: each window of speech is labelled as soon as it is heard "
        "(a short phrase about a second after it ends). Audio goes to this server only.</p>"
        "<button id='live-start' class='lg primary'>Start</button> "
        "<span id='live-status'>Press Start and allow the microphone.</span>"
        "<div id='live-label' class='live-label'>–</div><div id='live-bars'></div>"
        "<canvas id='live-timeline' width='1000' height='200'></canvas>"
        "<ol id='live-windows'></ol></div>"
    )
    return gr.HTML(html, js_on_load=LIVE_JS, css_template=LIVE_CSS, elem_id="live-tab")


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
        with gr.Tab("File"):
            with gr.Row():
                with gr.Column():
                    audio = gr.Audio(
                        sources=["upload", "microphone"], type="filepath", label="speech"
                    )
                    button = gr.Button("Predict", variant="primary", elem_id="predict")
                with gr.Column():
                    label = gr.Label(num_top_classes=len(names), label="emotion", elem_id="label")
            timeline = gr.Plot(label="emotions over time", visible=False)
            present = [e for e in examples if Path(e).is_file()]
            if present:
                gr.Examples(present, inputs=audio)
        with gr.Tab("Live", elem_id="live-tab-button"):
            live_tab(names)
        # The page's own endpoint, not a public one: programs use POST /predict.
        button.click(predict, inputs=audio, outputs=[label, timeline], api_visibility="private")
    # Queued functions answer only through the queue, as the page calls them: Gradio's direct
    # route (/gradio_api/run/predict) would otherwise run Predict for any program.
    return page.queue(api_open=False)
