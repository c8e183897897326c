"""The audio stages: voice activity and speaker diarization (offline, and overlap-aware on pyannote's segmentation
model), chosen by name in `diarizers`."""
