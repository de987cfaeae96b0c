"""The caption decoders a model dir can hold, by their name in its config.json (``schemas.training_run``).

    show_and_tell   ModelConfig      ShowAndTell        the pooled feature vector [B, D]
    attention       AttentionConfig  ShowAttendAndTell  the spatial map [B, grid_cells, D]

Training builds a model from a name and a config, and a model dir's config
rebuilds it (``checkpoints.restore_model``) through this one table.
"""
from img2txt.model.attention import ShowAttendAndTell
from img2txt.model.config import AttentionConfig, ModelConfig
from img2txt.model.show_and_tell import ShowAndTell
from img2txt.schemas import training_run

_DECODERS = {
    training_run.SHOW_AND_TELL: (ModelConfig, ShowAndTell),
    training_run.ATTENTION: (AttentionConfig, ShowAttendAndTell),
}


def config_class(decoder):
    """The config dataclass of a decoder name (one of ``training_run.DECODERS``).

    Raises:
      ValueError: an unknown name.
    """
    return _entry(decoder)[0]


def reads_spatial_features(decoder):
    """Whether the decoder reads the encoder's spatial map (rather than the pooled vector)."""
    return _entry(decoder)[1] is ShowAttendAndTell


def build_model(decoder, config):
    """A new model of a decoder name, from its config (an instance of ``config_class(decoder)``)."""
    config_cls, model_cls = _entry(decoder)
    if not isinstance(config, config_cls):
        raise TypeError(f'the {decoder} decoder takes a {config_cls.__name__}, got {type(config).__name__}')
    return model_cls(config)


def _entry(decoder):
    if decoder not in _DECODERS:
        raise ValueError(f'decoder must be one of {list(training_run.DECODERS)}, got {decoder!r}')
    return _DECODERS[decoder]
