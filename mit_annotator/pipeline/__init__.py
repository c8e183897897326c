"""The annotator run end to end: one video through every stage, a folder of videos into a dataset (workers, Ray),
and the command line."""
