"""The training input pipeline: preprocess output → batches of (image, caption) examples.

Reads what ``img2txt preprocess`` writes (``schemas.training_records``,
described by its ``manifest.json``), local or on ``gs://``::

  shard files ──interleave──▶ records ──parse──▶ (features, captions)
     ──captions──▶ one example per caption ('all'), or one caption per image ('one')
     ──shuffle in windows──▶ frame [START, words, END] ──padded_batch──▶ inputs/targets ──prefetch──▶

Each element is ``((features [B, D] float32, input_ids [B, T] int32),
target_ids [B, T] int32)``: what ``ShowAndTell.call`` reads and what its
logits are scored against (``caption_ops.split_caption_ids``; padding is
``PAD_ID``, which ``masked_loss`` ignores). T is the longest caption of the
batch plus one. With ``spatial``, the features are each image's spatial map
``[B, L, D]`` instead (L = H * W grid cells), what ``ShowAttendAndTell`` reads.

Training data is a pure function of the seed and the position in the run:
epoch e lists its files and shuffles its examples with seeds derived from
(seed, e), and 'one' picks an image's caption from (seed, e, image id). So a
run resumed after N examples rebuilds the same stream and skips N examples
(``start_example``): no input state has to be checkpointed, and the same
holds under every ``tf.distribute`` strategy.

Shards are read through TensorFlow's own file systems (tf.data needs them),
the manifest through ``model.storage`` as every job reads one. TensorFlow's
GCS client cannot be pointed at an emulator, so gs:// data dirs are not
tested here; local ones are.
"""

import tensorflow as tf

from img2txt.model import storage
from img2txt.model.networks.caption_ops import split_caption_ids
from img2txt.model.config import CAPTIONS_PER_IMAGE
from img2txt.schemas import manifest, training_records, vocabulary

# Shards read at once. More overlaps more reads on gs://, where each file's
# first bytes come slowly; the order stays deterministic.
_MAX_PARALLEL_READS = 16


def read_manifest(data_dir):
    """Returns the preprocess manifest of ``data_dir`` (local or gs://), validated.

    Raises:
      FileNotFoundError: ``data_dir`` has no manifest.
      ValueError: the manifest is not a preprocess manifest this version reads.
    """
    path = data_dir.rstrip('/') + '/' + manifest.FILE_NAME
    try:
        data = storage.read_bytes(path)
    except Exception:  # a missing file is an OSError locally, a BeamIOError on gs://
        raise FileNotFoundError(f'{data_dir} has no {manifest.FILE_NAME}: not the output of img2txt preprocess') \
            from None
    return manifest.loads(data, 'preprocess', path)


def read_vocabulary(data_dir, document):
    """The token list of the vocabulary file a preprocess manifest names (``schemas.vocabulary``)."""
    with tf.io.gfile.GFile(tf.io.gfile.join(data_dir, document[manifest.VOCABULARY][manifest.VOCABULARY_PATH])) as f:
        return vocabulary.read(f.read().splitlines())


def has_split(document, split):
    """Whether a preprocess manifest lists ``split`` (e.g. 'val')."""
    return split in document[manifest.SPLITS]


def spatial_grid(document, data_dir):
    """``(grid_cells, feature_dim)`` of the spatial maps a preprocess output's records hold.

    Raises:
      ValueError: the records hold no spatial maps (preprocess ran without --spatial-features).
    """
    height, width, channels = spatial_map_shape(document, data_dir)
    return height * width, channels


def examples_per_epoch(document, split, captions_per_image):
    """Examples in one pass over ``split``: its captions ('all') or its images ('one')."""
    _check_mode(captions_per_image)
    counts = _split(document, split)
    return counts[manifest.SPLIT_CAPTIONS if captions_per_image == 'all' else manifest.SPLIT_IMAGES]


def make_dataset(data_dir, split, batch_size, *, training, seed=0, captions_per_image='all', num_epochs=1,
                 start_example=0, shuffle_window_size=4096, spatial=False):
    """Batches of one split of a preprocess output.

    Args:
      data_dir: the preprocess output folder, local or gs://.
      split: 'train', 'val', 'test' ... (the manifest's ``splits``).
      batch_size: examples per batch; the last batch of the stream may be smaller.
      training: shuffle and repeat for ``num_epochs`` (files, examples and
        the caption chosen per image change every epoch); otherwise one pass
        in file order.
      seed: seed of the training order, which depends on nothing else
        (not on TensorFlow's global seed).
      captions_per_image: 'all' (every caption is an example, as im2txt) or
        'one' (one caption per image and epoch: each in turn, in a seeded
        order, so every caption is used once per as many epochs as the image
        has captions).
      num_epochs: training passes over the split; None repeats forever.
      start_example: training examples to skip: those a resumed run has
        already trained on. Whole epochs are skipped for free; the rest of
        the epoch it falls in is read and dropped.
      shuffle_window_size: training examples are shuffled within windows of this many.
      spatial: read each image's spatial map ``[L, D]`` instead of its pooled vector ``[D]``.

    Returns:
      A ``tf.data.Dataset`` of ``((features, input_ids), target_ids)``.

    Raises:
      FileNotFoundError: no manifest, or no shard files for the split.
      ValueError: a bad manifest, an unknown split, a bad argument, or
        ``spatial`` when the records hold no spatial maps.
    """
    _check_mode(captions_per_image)
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')
    document = read_manifest(data_dir)
    files, read, feature_shape = _reader(data_dir, document, split, spatial)

    def to_examples(records, epoch):
        return _examples(records, captions_per_image, seed, epoch)

    if training:
        examples = _training_stream(files, read, to_examples, examples_per_epoch(document, split, captions_per_image),
                                    seed, num_epochs, start_example, shuffle_window_size)
    else:
        examples = to_examples(read(tf.data.Dataset.from_tensor_slices(files)), 0)

    framed = examples.map(_frame, num_parallel_calls=tf.data.AUTOTUNE)
    batches = framed.padded_batch(
        batch_size, padded_shapes=(feature_shape, [None]),
        padding_values=(tf.constant(0, tf.float32), tf.constant(vocabulary.PAD_ID, tf.int32)))
    return batches.map(_inputs_and_targets, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_image_dataset(data_dir, split, batch_size, *, seed=0, num_epochs=1, start_example=0,
                       shuffle_window_size=4096, spatial=False):
    """Training batches of one split's images, for objectives that score whole captions (self-critical training).

    The images come in the order ``make_dataset`` would give them in its
    'one' mode (files and windows shuffled from ``seed`` and the epoch alone,
    so a run resumed at ``start_example`` images sees what an uninterrupted
    one would), repeated for ``num_epochs`` (None: forever).

    Returns:
      A ``tf.data.Dataset`` of ``(features, image_ids)`` batches: float
      ``[B, D]`` (with ``spatial``, the maps ``[B, L, D]``) and string ``[B]``.
    """
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')
    document = read_manifest(data_dir)
    files, read, _ = _reader(data_dir, document, split, spatial)

    def to_examples(records, epoch):
        # As 'one' mode: an image without captions has nothing to be scored against.
        with_captions = records.filter(lambda r: r['captions'].nrows() > 0)
        return with_captions.map(lambda r: (r['features'], r['image_id']))

    images = _training_stream(files, read, to_examples, examples_per_epoch(document, split, 'one'), seed,
                              num_epochs, start_example, shuffle_window_size)
    return images.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def image_records(data_dir, split, *, spatial=False):
    """One split's images, one pass in file order: a ``tf.data.Dataset`` of dicts.

    Each holds ``image_id`` (string), ``features`` (``[D]``; with ``spatial``
    the map ``[L, D]``) and ``captions`` (int64 ragged ``[num_captions, None]``,
    word ids without START and END), as ``training_records.parse`` gives them.
    """
    files, read, _ = _reader(data_dir, read_manifest(data_dir), split, spatial)
    return read(tf.data.Dataset.from_tensor_slices(files))


def _reader(data_dir, document, split, spatial):
    """(shard files, a function of a dataset of file names → parsed records, the features' shape)."""
    pattern = tf.io.gfile.join(data_dir, _split(document, split)[manifest.SPLIT_PATTERN])
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f'no {split} records in {data_dir}: nothing matches {pattern}')
    feature_dim = document[manifest.ENCODER][manifest.ENCODER_FEATURE_DIM]
    feature_dtype = document[manifest.FEATURE_DTYPE]
    if spatial:
        spatial_shape = spatial_map_shape(document, data_dir)
        spatial_dtype = document[manifest.SPATIAL_DTYPE]
        feature_shape = list(spatial_grid(document, data_dir))
    else:
        spatial_shape = spatial_dtype = None
        feature_shape = [feature_dim]

    def parse(record):
        parsed = training_records.parse(record, feature_dim, feature_dtype, spatial_shape, spatial_dtype)
        # The rest of the pipeline reads 'features': the map replaces the vector, which is not needed.
        if spatial:
            parsed['features'] = parsed.pop('spatial')
        return parsed

    def read(file_names):
        records = file_names.interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), _MAX_PARALLEL_READS),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)

    return files, read, feature_shape


def _training_stream(files, read, to_examples, per_epoch, seed, num_epochs, start_example, shuffle_window_size):
    """Examples over epochs, each epoch's files and windows permuted from (seed, epoch), from ``start_example`` on.

    ``to_examples(records, epoch)`` makes an epoch's examples of its parsed
    records; ``per_epoch`` is how many it makes. Whole epochs before
    ``start_example`` are skipped for free; the rest of the epoch it falls in
    is read and dropped.
    """
    first_epoch, skip = divmod(start_example, per_epoch)
    epochs = (tf.data.Dataset.counter(first_epoch) if num_epochs is None
              else tf.data.Dataset.range(first_epoch, num_epochs))

    def epoch_examples(epoch):
        epoch_seed = _fold_in(seed, epoch)
        file_names = tf.data.Dataset.from_tensor_slices(_permute(tf.constant(files), _fold_in(epoch_seed, 0)))
        return _shuffle_windows(to_examples(read(file_names), epoch), shuffle_window_size, _fold_in(epoch_seed, 1))

    return epochs.flat_map(epoch_examples).skip(skip)


def _examples(records, captions_per_image, seed, epoch):
    """Parsed records → (features, caption ids) examples."""
    if captions_per_image == 'all':
        return records.flat_map(lambda r: tf.data.Dataset.from_tensor_slices(r['captions']).map(
            lambda caption: (r['features'], caption)))
    with_captions = records.filter(lambda r: r['captions'].nrows() > 0)
    return with_captions.map(lambda r: (r['features'], _caption_of_epoch(r, seed, epoch)),
                             num_parallel_calls=tf.data.AUTOTUNE)


def _caption_of_epoch(record, seed, epoch):
    """The caption an image trains with in ``epoch`` ('one' mode).

    An image with n captions goes through them in cycles of n epochs, each
    cycle in its own random order, drawn from (seed, cycle, image id) alone:
    independent of file layout, shuffling and where a run resumed.
    """
    captions = record['captions']
    num_captions = captions.nrows()
    epoch = tf.cast(epoch, tf.int64)
    image_key = tf.strings.to_hash_bucket_fast(record['image_id'], 2 ** 62)
    cycle_seed = _fold_in(_fold_in(seed, epoch // num_captions), image_key)
    return _permute(captions, cycle_seed)[epoch % num_captions]


def _frame(features, caption):
    """Adds START and END around a caption's word ids."""
    caption = tf.cast(caption, tf.int32)
    return features, tf.concat([[vocabulary.START_ID], caption, [vocabulary.END_ID]], axis=0)


def _inputs_and_targets(features, caption_ids):
    input_ids, target_ids = split_caption_ids(caption_ids)
    return (features, input_ids), target_ids


def _fold_in(seed, data):
    """A stateless-op seed pair derived from a seed (int or pair) and an int."""
    if isinstance(seed, int):
        seed = tf.constant([seed, 0], tf.int64)
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(data, tf.int64))


def _permute(values, seed_pair):
    """A random permutation of a tensor's rows (a ragged one's too), drawn from a seed pair alone."""
    order = tf.argsort(tf.random.stateless_uniform([tf.shape(values, out_type=tf.int64)[0]], seed_pair))
    return tf.gather(values, order)


def _shuffle_windows(examples, window_size, seed_pair):
    """Permutes each run of ``window_size`` consecutive examples, window w by (seed, w).

    Stateless, unlike ``Dataset.shuffle``, whose seed also comes from
    TensorFlow's global seed and cannot vary with the epoch inside the
    pipeline: so the order is the same in every process and a resumed run
    can rebuild any epoch. An example stays within its window, which the
    per-epoch file order and the interleaved reads of several files fill
    from all over the split.
    """
    def permute(window_index, window):
        window_seed = _fold_in(seed_pair, window_index)
        return tuple(_permute(part, window_seed) for part in window)

    return examples.ragged_batch(window_size).enumerate().map(permute).unbatch()


def _split(document, split):
    splits = document[manifest.SPLITS]
    if split not in splits:
        raise ValueError(f'the preprocess output has no {split!r} split; it has {sorted(splits)}')
    return splits[split]


def spatial_map_shape(document, data_dir):
    """The records' spatial map shape [H, W, C]; ValueError when they hold none."""
    # Manifests written before spatial maps lack SPATIAL_DTYPE: their records hold none.
    if document.get(manifest.SPATIAL_DTYPE) is None:
        raise ValueError(f'{data_dir} has no spatial feature maps, which the attention decoder reads: '
                         f'rerun preprocess with --spatial-features')
    return document[manifest.ENCODER][manifest.ENCODER_SPATIAL_SHAPE]


def _check_mode(captions_per_image):
    if captions_per_image not in CAPTIONS_PER_IMAGE:
        raise ValueError(f'captions_per_image must be one of {list(CAPTIONS_PER_IMAGE)}, got {captions_per_image!r}')
