"""mit_annotator: turn conversation videos (2-4 people on screen) into the MIT dataset's annotations.

Plain library: never imports ComfyUI or covog. Layers, each importing only those below it (docs/architecture.md):
`pipeline` (one video end to end, the batch, the command line) > `dataset` (clip selection, the MIT layout) and
`synthetic` (test conversations with exact ground truth) > `speakers` (who speaks) > `vision` and `audio` (the
stages) > `core` (records, media I/O, model files).
"""

__version__ = "0.3.0"
