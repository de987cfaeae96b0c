"""Small preprocess outputs written directly, for tests of training and export.

Writes what ``img2txt preprocess`` would (shards, vocab.txt, manifest.json)
from images given as ``(image_id, features, [caption ids, ...])``, in
milliseconds instead of a pipeline run. Features are a pooled vector ``[D]``,
or a spatial map ``[H, W, D]``, which is stored as preprocess
``--spatial-features`` stores it: with its mean over the grid as the vector.
"""
import dataclasses

import numpy as np

from img2txt.model.input_spec import InputSpec
from img2txt.schemas import manifest, training_records, vocabulary


def write_training_data(root, splits, *, feature_dtype='float32', spatial_dtype='float32', vocab_size=20, shards=1,
                        resize_mode='crop'):
    """Writes what ``img2txt preprocess`` would: shards, vocab.txt and manifest.json. Returns ``str(root)``.

    ``splits`` maps a split name to its images, each ``(image_id, features,
    [caption ids, ...])``, every image's features of one shape: vectors, or
    maps (stored in ``spatial_dtype``). Shard i of a split holds every
    ``shards``-th image from image i. The encoder is the default one's, with
    ``resize_mode`` (preprocess --resize).
    """
    root.mkdir(parents=True, exist_ok=True)
    feature_shape = np.shape(splits['train'][0][1])
    spatial_shape = list(feature_shape) if len(feature_shape) == 3 else None

    def encode(image_id, features, captions):
        if spatial_shape is None:
            return training_records.encode(image_id, features, captions, feature_dtype)
        return training_records.encode(image_id, np.mean(features, axis=(0, 1)), captions, feature_dtype,
                                       spatial=features, spatial_dtype=spatial_dtype)

    for split, images in splits.items():
        (root / split).mkdir(exist_ok=True)
        for shard in range(shards):
            records = [encode(*image) for image in images[shard::shards]]
            (root / training_records.shard_name(split, shard, shards)).write_bytes(
                b''.join(training_records.frame(r) for r in records))
    words = [f'word{i}' for i in range(vocab_size - vocabulary.NUM_RESERVED)]
    (root / vocabulary.VOCABULARY_FILE).write_text('\n'.join(vocabulary.RESERVED_TOKENS + tuple(words)) + '\n')
    encoder = {manifest.ENCODER_NAME: 'efficientnet_lite0', manifest.ENCODER_ID: 'efficientnet_lite0@test',
               manifest.ENCODER_FEATURE_DIM: feature_shape[-1],
               manifest.ENCODER_INPUT_SPEC: dataclasses.asdict(InputSpec(224, 256, 'bicubic', resize_mode))}
    if spatial_shape is not None:
        encoder[manifest.ENCODER_SPATIAL_SHAPE] = spatial_shape
    document = manifest.preprocess_manifest(
        version='0.1.0', inputs={}, options={'encoder_weights': None}, counts={}, started_at='', finished_at='',
        dataset='jsonl', encoder=encoder, feature_dtype=feature_dtype,
        spatial_dtype=None if spatial_shape is None else spatial_dtype, vocabulary_size=vocab_size, min_word_count=1,
        splits={split: (len(images), sum(len(c) for _, _, c in images), shards) for split, images in splits.items()})
    (root / manifest.FILE_NAME).write_text(manifest.dumps(document))
    return str(root)


def random_images(num_images, captions_per_image=1, *, feature_dim=8, grid=None, vocab_size=20, seed=0,
                  prefix='img'):
    """Images with random features and distinct random captions of 2-5 words.

    The features are vectors ``[feature_dim]``, or with ``grid`` (H, W) maps ``[H, W, feature_dim]``.
    """
    rng = np.random.default_rng(seed)
    images, seen = [], set()
    while len(images) < num_images:
        captions = []
        while len(captions) < captions_per_image:
            caption = tuple(int(w) for w in rng.integers(vocabulary.NUM_RESERVED, vocab_size, rng.integers(2, 6)))
            if caption not in seen:
                seen.add(caption)
                captions.append(list(caption))
        images.append((f'{prefix}{len(images):03d}', rng.normal(size=(*(grid or ()), feature_dim)).astype(np.float32), captions))
    return images


def distinct_captions(rng, num_images, max_words, vocab_size=30):
    """Distinct random word sequences of 3 to ``max_words`` ids, one per image, as beam search returns them.

    Returns ``(words [N, max_words], captions [N, max_words + 2])``: the words padded with ``PAD_ID``, and
    the same framed as ``[START, words, END]``.
    """
    words = np.full((num_images, max_words), vocabulary.PAD_ID, np.int32)
    captions = np.full((num_images, max_words + 2), vocabulary.PAD_ID, np.int32)
    for i in range(num_images):
        caption = rng.choice(np.arange(vocabulary.NUM_RESERVED, vocab_size), size=rng.integers(3, max_words + 1),
                             replace=False)
        words[i, :len(caption)] = caption
        captions[i, :len(caption) + 2] = [vocabulary.START_ID, *caption, vocabulary.END_ID]
    return words, captions
