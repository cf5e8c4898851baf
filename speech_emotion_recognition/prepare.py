"""Decode a corpus into the cache and write its split manifests once (the DVC `prepare` stage).

python speech_emotion_recognition/prepare.py experiment=ravdess_small hydra.run.dir=DIR
writes DIR/splits/{train,val,test}.csv; train and evaluate reuse them with
`data.manifest_dir=DIR/splits` (evaluate: `manifest_dir=DIR/splits`).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from speech_emotion_recognition.cli import check_arguments
from speech_emotion_recognition.data.datamodule import EmotionDataModule


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    datamodule: EmotionDataModule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()


if __name__ == "__main__":
    check_arguments("train")
    main()
