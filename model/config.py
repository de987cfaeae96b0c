"""Configuration of the caption models and of their training.

Plain dataclasses, as im2txt's ``configuration.py``: ``DecoderConfig``, the
fields every decoder has (what a checkpoint needs to be rebuilt and decoded),
which each decoder's module extends with its own (``ShowAndTellConfig`` in
``model.networks.show_and_tell``, ``AttentionConfig`` in
``model.networks.attention``), and ``TrainingConfig``.
Defaults are im2txt's where they apply. Each field's ``help`` documents it and
is the text of its command-line flag (``jobs.flags``). Each round-trips
through JSON with ``to_dict``/``from_dict`` so a run can save them next to its
checkpoints.
"""
import dataclasses
from typing import Optional

OPTIMIZERS = ('sgd', 'adam')

# The learning rate an optimizer gets when ``TrainingConfig.learning_rate`` is
# None: im2txt's for SGD, Keras's (and the demo prototype's) for Adam.
DEFAULT_LEARNING_RATES = {'sgd': 2.0, 'adam': 1e-3}

# How training reads an image's captions: every caption is an example (as
# im2txt), or each epoch one of them, a different one each epoch.
CAPTIONS_PER_IMAGE = ('all', 'one')

# What training minimises: the captions' cross-entropy, or (self-critical
# training, model.training.self_critical) minus the CIDEr-D of sampled captions.
CROSS_ENTROPY, SELF_CRITICAL = 'cross_entropy', 'self_critical'
OBJECTIVES = (CROSS_ENTROPY, SELF_CRITICAL)
# Adam's rate for self-critical training (self-critical.pytorch's): larger ones make CIDEr fall when it starts.
SELF_CRITICAL_LEARNING_RATE = 5e-5

# Which checkpoint training exports: the best by val CIDEr-D (when caption
# validation ran; else the latest), or the latest.
EXPORT_BEST, EXPORT_LATEST = 'best', 'latest'
EXPORT_CHECKPOINTS = (EXPORT_BEST, EXPORT_LATEST)


def option(default=dataclasses.MISSING, **metadata):
    """A config field; ``metadata`` holds its flag's ``help`` (and ``choices``, ``metavar``)."""
    return dataclasses.field(default=default, metadata=metadata)


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


def check(condition, message):
    """Raises ValueError(message) unless ``condition``: how a config refuses a value."""
    if not condition:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class DecoderConfig(_Dictable):
    """The sizes and decoding options every caption decoder has, under one name each.

    Declared once, so that a field (and its command-line flag, ``jobs.flags``)
    means the same for either decoder.
    """

    vocab_size: int = option(help='number of token ids, reserved tokens included: the length of the vocabulary '
                                  'file the training data was built with')
    feature_dim: int = option(help="length of the image feature vectors the encoder produces, one per image or "
                                   "(attention) one per grid cell: 1280 for EfficientNet-Lite0")
    embedding_size: int = option(512, help='size of the word embeddings fed to the LSTM (Show and Tell: and of '
                                           'the image embedding; attention: and of the deep output layer)')
    lstm_units: int = option(512, help='units in the LSTM: the size of its output and of each of its two states')
    # im2txt's name and meaning; the Keras dropout rate is 1 - this.
    lstm_dropout_keep_prob: float = option(0.7, help="probability of keeping a unit in the dropout on the LSTM's "
                                                     'inputs and outputs during training; 1.0 disables dropout')
    # Biases start at zero (the LSTM's forget-gate bias at one).
    initializer_scale: float = option(0.08, help='every weight starts uniform in [-scale, scale]')
    max_caption_length: int = option(20, help='most words in a generated caption; one that reaches it without '
                                              'the end token is kept as it is')
    beam_size: int = option(3, help='hypotheses beam search keeps per image; 1 is greedy decoding')
    # 0.0 ranks by plain log-probability, as im2txt does.
    length_normalization: float = option(0.0, help='alpha of the GNMT length penalty ((5 + length) / 6) ** alpha '
                                                   'that beam search divides log-probabilities by when ranking '
                                                   'finished captions; larger values favour longer captions')

    def __post_init__(self):
        for name in ('vocab_size', 'feature_dim', 'embedding_size', 'lstm_units',
                     'max_caption_length', 'beam_size'):
            value = getattr(self, name)
            check(isinstance(value, int) and value > 0, f'{name} must be a positive integer, got {value!r}')
        check(0.0 < self.lstm_dropout_keep_prob <= 1.0,
               f'lstm_dropout_keep_prob must be in (0, 1], got {self.lstm_dropout_keep_prob}')
        check(self.initializer_scale > 0, f'initializer_scale must be positive, got {self.initializer_scale}')
        check(self.length_normalization >= 0,
               f'length_normalization must be >= 0, got {self.length_normalization}')


@dataclasses.dataclass(frozen=True)
class TrainingConfig(_Dictable):
    """Options of the training job."""

    batch_size: int = option(32, help='captions (one image-caption pair each) per training step, over all replicas; '
                                      'self-critical: images (each sampled --self-critical-samples times)')
    objective: str = option(CROSS_ENTROPY, choices=OBJECTIVES,
                            help="'cross_entropy' (teacher forcing on the human captions) or 'self_critical' "
                                 '(raise the CIDEr-D of sampled captions against the train references; '
                                 'starts from --init-from, a cross-entropy model, with --optimizer adam)')
    init_from: Optional[str] = option(None, help='start from the weights of this model dir (its best checkpoint by '
                                                 'val CIDEr-D, else its latest) when --model-dir has no checkpoint '
                                                 'yet; same decoder, sizes and encoder')
    self_critical_samples: int = option(5, help='self-critical: captions sampled per image; each is scored against '
                                                'the mean reward of the others (at least 2)')
    optimizer: str = option('sgd', choices=OPTIMIZERS,
                            help="'sgd' (im2txt: plain SGD with a staircase-decayed rate) or 'adam'")
    learning_rate: Optional[float] = option(None, help="initial learning rate; none: the optimizer's default, "
                                                       '2.0 for sgd (im2txt) and 1e-3 for adam; self-critical: '
                                                       f'{SELF_CRITICAL_LEARNING_RATE:g}')
    learning_rate_decay_factor: float = option(0.5, help='sgd only: multiply the learning rate by this every '
                                                         '--num-epochs-per-decay epochs (staircase, as im2txt)')
    num_epochs_per_decay: float = option(8.0, help='sgd only: epochs between two learning-rate decays')
    clip_gradients: float = option(5.0, help='clip the gradient to this global norm before applying it; 0 disables')
    num_epochs: int = option(20, help='passes over the training data')
    max_steps: Optional[int] = option(None, help='stop after this many steps even if --num-epochs are not done; '
                                               'none: no limit')
    # 'all' is im2txt's (an epoch is a pass over every caption); 'one' makes
    # epochs shorter and visits each caption of an image once every N epochs
    # (N its number of captions), in an order that changes from cycle to cycle.
    captions_per_image: str = option('all', choices=CAPTIONS_PER_IMAGE,
                                     help="training examples per image and epoch: 'all' its captions, or 'one' "
                                          'of them, a different one each epoch')
    # Large enough to mix the captions of many images; a window is held in
    # memory, about 5 kB per example with 1280-d features, 250 kB with the
    # attention decoder's 7x7x1280 maps (1 GB at 4096).
    shuffle_window_size: int = option(4096, help='training examples are shuffled within windows of this many')
    checkpoint_every_steps: int = option(1000, help='save a checkpoint every this many steps (and at the end, or '
                                                    'when the job is interrupted)')
    keep_checkpoints: int = option(5, help='most recent checkpoints to keep')
    validation_every_steps: int = option(1000, help="compute the loss on the 'val' split every this many steps "
                                                    '(and at the end); 0: only at the end')
    log_every_steps: int = option(100, help='report progress and write TensorBoard scalars every this many steps')
    # Loss does not say which checkpoint captions best: caption quality does.
    caption_validation_every_steps: int = option(
        0, help="every this many steps (and at the end), caption the 'val' split with beam search and score it "
                '(CIDEr-D, BLEU-4, METEOR where Java is present; TensorBoard and the log show them); the checkpoint '
                'with the best CIDEr-D is kept in best/. 0: never')
    caption_validation_images: Optional[int] = option(
        None, help="caption validation captions only the first this many 'val' images; none: all of them")
    export_checkpoint: str = option(
        EXPORT_BEST, choices=EXPORT_CHECKPOINTS,
        help="export the checkpoint with the best val CIDEr-D ('best', when caption validation ran) or the "
             "'latest'")
    seed: int = option(0, help='seed of weight initialisation, dropout and data order')

    def __post_init__(self):
        check(self.optimizer in OPTIMIZERS, f'optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}')
        check(self.captions_per_image in CAPTIONS_PER_IMAGE,
               f'captions_per_image must be one of {list(CAPTIONS_PER_IMAGE)}, got {self.captions_per_image!r}')
        for name in ('batch_size', 'num_epochs', 'checkpoint_every_steps', 'keep_checkpoints',
                     'shuffle_window_size', 'log_every_steps'):
            value = getattr(self, name)
            check(isinstance(value, int) and value > 0, f'{name} must be a positive integer, got {value!r}')
        for name in ('validation_every_steps', 'caption_validation_every_steps'):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 0, f'{name} must be an integer >= 0, got {value!r}')
        check(self.caption_validation_images is None or (
            isinstance(self.caption_validation_images, int) and self.caption_validation_images > 0),
            f'caption_validation_images must be a positive integer or None, got {self.caption_validation_images!r}')
        check(self.export_checkpoint in EXPORT_CHECKPOINTS,
               f'export_checkpoint must be one of {list(EXPORT_CHECKPOINTS)}, got {self.export_checkpoint!r}')
        check(self.max_steps is None or (isinstance(self.max_steps, int) and self.max_steps > 0),
               f'max_steps must be a positive integer or None, got {self.max_steps!r}')
        check(self.learning_rate is None or self.learning_rate > 0,
               f'learning_rate must be positive or None, got {self.learning_rate}')
        check(0.0 < self.learning_rate_decay_factor <= 1.0,
               f'learning_rate_decay_factor must be in (0, 1], got {self.learning_rate_decay_factor}')
        check(self.num_epochs_per_decay > 0, f'num_epochs_per_decay must be positive, got {self.num_epochs_per_decay}')
        check(self.clip_gradients >= 0, f'clip_gradients must be >= 0, got {self.clip_gradients}')
        check(self.objective in OBJECTIVES, f'objective must be one of {list(OBJECTIVES)}, got {self.objective!r}')
        check(isinstance(self.self_critical_samples, int) and self.self_critical_samples >= 2,
               f'self_critical_samples must be an integer >= 2, got {self.self_critical_samples!r}')
        if self.objective == SELF_CRITICAL:
            check(self.init_from is not None, 'self-critical training starts from a cross-entropy model: give '
                                               '--init-from MODEL_DIR')
            check(self.optimizer == 'adam', "self-critical training runs with --optimizer adam (SGD at im2txt's "
                                             'rates undoes the cross-entropy model in a few steps)')

    @property
    def initial_learning_rate(self):
        """The learning rate at step 0: ``learning_rate`` or the optimizer's default."""
        if self.learning_rate is None:
            if self.objective == SELF_CRITICAL:
                return SELF_CRITICAL_LEARNING_RATE
            return DEFAULT_LEARNING_RATES[self.optimizer]
        return self.learning_rate
