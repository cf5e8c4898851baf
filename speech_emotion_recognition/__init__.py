"""Speech emotion recognition with a CNN + Transformer encoder on log-mel spectrograms."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Configs resolve every path from here, so scripts work from any working directory.
os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))
