"""The README is the front door: short, and its results table is the one the reports give."""

from scripts.results_table import BEGIN, END, table
from speech_emotion_recognition import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"


def test_readme_results_table_is_generated_from_the_reports():
    text = README.read_text()
    block = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert block == table(), "README.md's table is stale: run `python scripts/results_table.py`"


def test_readme_stays_a_front_door():
    assert len(README.read_text().splitlines()) <= 300
