"""The MIT dataset: clip selection, the clip folders written and read back, the dataset report."""
