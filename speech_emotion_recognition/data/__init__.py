"""Data: corpus parsers (corpora), the decoded-audio cache (cache), speaker splits (splits), clips
and their manifests (clips), the Dataset and DataModule (datamodule). Only datamodule imports
Lightning."""
