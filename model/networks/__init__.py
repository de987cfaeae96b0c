"""The networks: the encoders (EfficientNet-Lite, ImageNet weights), the decoders and their table (``decoders``), and the parts they share (``caption_ops``)."""
