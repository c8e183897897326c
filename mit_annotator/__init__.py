"""mit_annotator: turn conversation videos (2-4 people on screen) into the MIT dataset's annotations.

Plain library: never imports ComfyUI. `records` holds the shared data model, `media` the video/audio I/O,
`synthetic` the test conversations with exact ground truth.
"""

__version__ = "0.1.0"
