"""The server: the JSON API, the demo page, the model behind both and the guards in front."""
