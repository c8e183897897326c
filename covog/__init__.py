"""CovOG: the multi-human talking-video generator of "Multi-human Interactive Talking Dataset" (arXiv 2508.03050).

An AnimateAnyone-style SD-1.5 video diffusion model on diffusers/transformers, with a Multi-Human Pose Encoder
(`pose_encoder`) and an Interactive Audio Driver (`audio_driver`). Plain library: never imports ComfyUI.

- `model`: the components as one object, built from `configs` or loaded from a model folder;
- `denoiser`, `reference_attention`, `encoders`: one denoising pass, the ReferenceNet's attention, CLIP and wav2vec2;
- `conditioning`, `skeleton`: the per-person inputs (skeleton renders, face masks, speaking scores) from the
  annotator's records;
- `sampler`: the windowed DDIM sampler for long videos; `generate`, `convert`, `train`: the command lines;
- `checkpoints`: loaders for Moore-AnimateAnyone, CovOG training outputs, AnimateDiff v2 and diffusers folders.
"""

__version__ = "0.1.0"
