"""Configuration of the Show-and-Tell model and of its training.

Two plain dataclasses, as im2txt's ``configuration.py``: one for the model
(what a checkpoint needs to be rebuilt and decoded) and one for training.
Defaults are im2txt's where they apply. Both round-trip through JSON with
``to_dict``/``from_dict`` so a run can save them next to its checkpoints.
"""
import dataclasses
from typing import Optional

OPTIMIZERS = ('sgd', 'adam')

# The learning rate an optimizer gets when ``TrainingConfig.learning_rate`` is
# None: im2txt's for SGD, Keras's (and the demo prototype's) for Adam.
DEFAULT_LEARNING_RATES = {'sgd': 2.0, 'adam': 1e-3}


class _Dictable:
    """``to_dict``/``from_dict`` for the config dataclasses below."""

    def to_dict(self):
        """Returns the fields as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Builds a config from ``to_dict``'s output.

        Raises ValueError naming the fields if ``values`` has fields this class
        does not know (a config from another version, or a typo) or lacks a
        required one.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown {cls.__name__} fields {unknown}; known fields: {sorted(known)}')
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in values
                         and f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
        if missing:
            raise ValueError(f'{cls.__name__} needs the fields {missing}')
        return cls(**values)


def _check(condition, message):
    if not condition:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Dictable):
    """Sizes and decoding options of the Show-and-Tell model."""

    # Number of token ids, reserved tokens included: the length of the
    # vocabulary file the training data was built with.
    vocab_size: int
    # Length of the image feature vectors the encoder produces (1280 for
    # EfficientNet-Lite0's pooled features).
    feature_dim: int
    # Size of the image and word embeddings fed to the LSTM.
    embedding_size: int = 512
    # Number of units in the LSTM: the size of its output and of each of its
    # two state tensors.
    lstm_units: int = 512
    # Probability of keeping a unit in the dropout on the LSTM's inputs and
    # outputs during training (im2txt's name; the Keras dropout rate is
    # 1 - this). 1.0 disables dropout.
    lstm_dropout_keep_prob: float = 0.7
    # Every weight starts uniform in [-initializer_scale, initializer_scale];
    # biases start at zero (the LSTM's forget-gate bias at one).
    initializer_scale: float = 0.08
    # Most words in a generated caption; a caption that reaches it without
    # emitting the end token is kept as it is.
    max_caption_length: int = 20
    # Number of hypotheses beam search keeps per image; 1 is greedy decoding.
    beam_size: int = 3
    # Alpha of the GNMT length penalty ((5 + length) / 6) ** alpha that beam
    # search divides log-probabilities by when ranking finished captions.
    # 0.0 ranks by plain log-probability, as im2txt does; larger values favour
    # longer captions.
    length_normalization: float = 0.0

    def __post_init__(self):
        for name in ('vocab_size', 'feature_dim', 'embedding_size', 'lstm_units',
                     'max_caption_length', 'beam_size'):
            value = getattr(self, name)
            _check(isinstance(value, int) and value > 0, f'{name} must be a positive integer, got {value!r}')
        _check(0.0 < self.lstm_dropout_keep_prob <= 1.0,
               f'lstm_dropout_keep_prob must be in (0, 1], got {self.lstm_dropout_keep_prob}')
        _check(self.initializer_scale > 0, f'initializer_scale must be positive, got {self.initializer_scale}')
        _check(self.length_normalization >= 0,
               f'length_normalization must be >= 0, got {self.length_normalization}')


@dataclasses.dataclass(frozen=True)
class TrainingConfig(_Dictable):
    """Options of the training job."""

    # Captions (one image-caption pair each) per training step.
    batch_size: int = 32
    # 'sgd' (im2txt: plain SGD with a staircase-decayed rate) or 'adam'.
    optimizer: str = 'sgd'
    # Initial learning rate; None takes the optimizer's default
    # (DEFAULT_LEARNING_RATES: 2.0 for SGD as in im2txt, 1e-3 for Adam).
    learning_rate: Optional[float] = None
    # SGD only: multiply the learning rate by this factor every
    # num_epochs_per_decay epochs, in steps (staircase), as im2txt.
    learning_rate_decay_factor: float = 0.5
    # SGD only: epochs between two learning-rate decays.
    num_epochs_per_decay: float = 8.0
    # Clip gradients to this global norm before applying them; 0 disables.
    clip_gradients: float = 5.0
    # Passes over the training captions.
    num_epochs: int = 20
    # Stop after this many steps even if num_epochs are not done; None: no limit.
    max_steps: Optional[int] = None
    # Save a checkpoint every this many steps (and at the end of training).
    checkpoint_every_steps: int = 1000
    # Seed of weight initialisation, dropout and input shuffling.
    seed: int = 0

    def __post_init__(self):
        _check(self.optimizer in OPTIMIZERS, f'optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}')
        for name in ('batch_size', 'num_epochs', 'checkpoint_every_steps'):
            value = getattr(self, name)
            _check(isinstance(value, int) and value > 0, f'{name} must be a positive integer, got {value!r}')
        _check(self.max_steps is None or (isinstance(self.max_steps, int) and self.max_steps > 0),
               f'max_steps must be a positive integer or None, got {self.max_steps!r}')
        _check(self.learning_rate is None or self.learning_rate > 0,
               f'learning_rate must be positive or None, got {self.learning_rate}')
        _check(0.0 < self.learning_rate_decay_factor <= 1.0,
               f'learning_rate_decay_factor must be in (0, 1], got {self.learning_rate_decay_factor}')
        _check(self.num_epochs_per_decay > 0, f'num_epochs_per_decay must be positive, got {self.num_epochs_per_decay}')
        _check(self.clip_gradients >= 0, f'clip_gradients must be >= 0, got {self.clip_gradients}')

    @property
    def initial_learning_rate(self):
        """The learning rate at step 0: ``learning_rate`` or the optimizer's default."""
        if self.learning_rate is None:
            return DEFAULT_LEARNING_RATES[self.optimizer]
        return self.learning_rate
