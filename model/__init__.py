"""Encoders, the Show-and-Tell model, beam search, export and evaluation."""
