"""Lightning's CSV logger, keeping a resumed run's earlier epochs.

Lightning's writer deletes a run folder's metrics.csv when it starts, so a run continued from
its last.ckpt kept only the epochs after the resume, and its model card's curve lost the rest.
This writer keeps the earlier rows up to the epoch the run resumes at (the first epoch it logs):
what the stopped process logged of that epoch or later is what the resumed one logs again.
"""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _KeepingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        self.earlier: list[dict[str, str]] | None = None
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.earlier = list(csv.DictReader(f))
            self._fs.rm_file(self.metrics_file_path)

    def save(self) -> None:
        if self.earlier is not None and self.metrics:
            epochs = [int(float(m["epoch"])) for m in self.metrics if "epoch" in m]
            resumed_at = min(epochs, default=0)
            kept = [r for r in self.earlier if r.get("epoch") and float(r["epoch"]) < resumed_at]
            self.earlier = None
            if kept:
                self.metrics_keys = sorted({k for row in kept for k in row})
                with self._fs.open(self.metrics_file_path, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                    writer.writeheader()
                    writer.writerows(kept)
        super().save()


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` whose metrics.csv survives a resume (conf/logger/csv.yaml)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment
