"""Scores of a generated conversation video, as plain functions on arrays."""
