"""Serving a trained captioner: the export (one SavedModel, encoder and search inside), loading it (``captioner``), beam search, and bytes to pixels in-graph and with Pillow."""
