"""Training: the loop (``loop``: ``train`` and what it returns, re-exported here), its step and objectives
(``train_step``, ``self_critical`` with its ``cider`` reward), the input pipeline, checkpoints, caption
validation and the distribution strategy."""
from img2txt.model.training.loop import DATA_MODEL_FIELDS, TrainResult, build_optimizer, export_model, train  # noqa: F401
