"""The annotator's foundation: the records that flow between stages, keypoint layouts and pose formats, media I/O,
files written whole, model files and ONNX Runtime sessions. Imports nothing above it."""
