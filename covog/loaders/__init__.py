"""Published checkpoints (Moore-AnimateAnyone, AnimateDiff, CovOG training outputs) read into a CovOG model."""
