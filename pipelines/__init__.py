"""Beam pipelines and their PTransforms."""
