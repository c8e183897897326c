"""CovOG's networks: the pose encoder (MPE), the audio driver (IAD), reference attention, the condition encoders,
the denoising pass, their configs, and the model object that holds them."""
