"""Training: the LightningModule, augmentation, losses' weights, callbacks, fine-tuning."""
