"""CovOG: the multi-human talking-video generator of "Multi-human Interactive Talking Dataset" (arXiv 2508.03050).

An AnimateAnyone-style SD-1.5 video diffusion model with a Multi-Human Pose Encoder and an Interactive Audio
Driver. Plain library: never imports ComfyUI. In so far: `pose_encoder` (MPE) and `skeleton` (its per-person
inputs); the audio driver, the UNets, the sampler, checkpoints and the trainer follow.
"""

__version__ = "0.1.0"
