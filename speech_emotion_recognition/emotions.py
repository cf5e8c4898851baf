"""The six emotion classes, in the label order that every parser, checkpoint and table uses."""

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad")
