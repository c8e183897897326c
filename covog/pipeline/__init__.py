"""Generation: per-person conditioning from the annotator's records, and the multi-speaker sampler for long videos."""
