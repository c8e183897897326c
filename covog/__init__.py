"""CovOG: the multi-human talking-video generator of "Multi-human Interactive Talking Dataset" (arXiv 2508.03050).

An AnimateAnyone-style SD-1.5 video diffusion model on diffusers/transformers, with a Multi-Human Pose Encoder and
an Interactive Audio Driver. Plain library: never imports ComfyUI. Layers, each importing only those below it
(docs/architecture.md): the commands `train`, `generate`, `convert`, `evaluate` (`python -m covog.NAME`) >
`training` and `evaluation` > `pipeline` (conditioning, the sampler) > `loaders` (published checkpoints) >
`models` (the networks and the model object); all of it reads the annotator's records (`mit_annotator`).
"""

__version__ = "0.3.0"
