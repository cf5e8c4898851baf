"""The prediction path in plain torch: engines, speech detection, streaming. It never imports
Lightning, W&B or the training configs (tests/test_entry_points.py holds it to that)."""
