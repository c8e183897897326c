"""Training data: clip folders in the MIT layout as CovOG's batches."""
