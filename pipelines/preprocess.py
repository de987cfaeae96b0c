"""Preprocess: a caption dataset and its images → sharded training TFRecords.

The CNN runs here, once per image, so training never touches pixels again::

  ReadDataset ─┬─ Tokenize ─────────────────────────────┐
               └─ ImagePaths → DecodeImages → Encode ───┴─ Join → tf.Transform ─┬─ WriteShards
                                                  └─ (--spatial-features) maps ──┘
                         (read/decode/encode failures ──────────────────────────→ errors Parquet)

With ``--spatial-features`` each record also holds the encoder's last feature
map (7×7×1280 for the default encoder), from the same network pass as the
pooled vector. The maps bypass tf.Transform, which has no use for them, and
join their records by image id after it.

tf.Transform analyses the train split only (the vocabulary: words seen at
least ``min_word_count`` times) and the same ``transform_fn`` maps every split,
so train, val and test share ids. Output, under ``--output`` (local or gs://)::

  train/data-SSSSS-of-NNNNN.tfrecord   one record per image (schemas.training_records)
  val/..., test/...                    the other splits present in the dataset
  vocab.txt                            reserved tokens + learned words (schemas.vocabulary)
  transform_fn/, transformed_metadata/ the tf.Transform output (schemas.transform)
  errors/errors-SSSSS-of-NNNNN.parquet one record per input that failed (schemas.errors)
  manifest.json                        inputs, counts, encoder, vocabulary, options

Counts add up: images read = images written + images failed, and likewise
for captions; the manifest records all of them.
"""
import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import shutil
import tempfile
import typing
import zlib

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

import img2txt
from img2txt.model import input_spec, storage
from img2txt.model.networks import encoders
from img2txt.model.input_spec import DEFAULT_MAX_PIXELS
from img2txt.model.tokenizer import tokenize
from img2txt.pipelines import beam_options, datasets, decode_images, progress as progress_lib
from img2txt.pipelines.model_handlers import EncoderModelHandler
from img2txt.schemas import errors, manifest, training_records, transform, vocabulary

ALL_SPLITS = datasets.SPLITS + (datasets.RESTVAL,)


@dataclasses.dataclass
class PreprocessConfig:
    """Options of the preprocess job; each field is the flag of the same name."""

    dataset: str = dataclasses.field(metadata={
        'help': 'caption dataset format', 'choices': datasets.FORMATS})
    captions: str = dataclasses.field(metadata={
        'help': 'caption file (for pascal: the folder of sentence files), local or gs://'})
    images: str = dataclasses.field(metadata={'help': 'folder or gs:// prefix the image names are relative to'})
    output: str = dataclasses.field(metadata={'help': 'output folder, local or gs://'})
    encoder: str = dataclasses.field(default=encoders.DEFAULT, metadata={
        'help': 'image encoder', 'choices': tuple(encoders.names())})
    encoder_weights: str | None = dataclasses.field(default=None, metadata={
        'help': 'encoder weights file, or "imagenet"; default: the encoder\'s packaged weights'})
    min_word_count: int = dataclasses.field(default=4, metadata={
        'help': 'words seen fewer times in the train split map to <unk>'})
    max_vocabulary_size: int | None = dataclasses.field(default=None, metadata={
        'help': 'keep at most this many learned words (most frequent first)'})
    max_caption_length: int | None = dataclasses.field(default=None, metadata={
        'help': 'truncate captions to this many tokens'})
    feature_dtype: str = dataclasses.field(default='float32', metadata={
        'help': 'storage type of the image features', 'choices': training_records.FEATURE_DTYPES})
    spatial_features: bool = dataclasses.field(default=False, metadata={
        'help': 'also store the encoder\'s last feature map (e.g. 7x7x1280) in each record, for attention '
                'decoders: 7x7x1280 in float16 adds 125 kB per image'})
    spatial_layer: str = dataclasses.field(default=encoders.DEFAULT_SPATIAL_LAYER, metadata={
        'help': "with --spatial-features: which map to store. 'head': the last feature map, the one the features "
                "pool (7x7x1280 for Lite0); 'stride16' (EfficientNet-Lite): the first 1/16-resolution block's "
                '(14x14x240 for Lite0), whose channels still tell colour apart from shape',
        'choices': tuple(encoders.SPATIAL_LAYERS)})
    resize: str = dataclasses.field(default=input_spec.CROP, metadata={
        'help': "how each photo becomes the encoder's square: 'crop' resizes the short side and keeps the centre "
                "(what ImageNet encoders saw); 'squash' resizes the whole photo, aspect not kept (for data sets of "
                'photos already stretched to squares). Recorded in the manifest; the exported captioner, and caption, '
                'describe and evaluate with it, resize the same way',
        'choices': input_spec.RESIZE_MODES})
    spatial_dtype: str = dataclasses.field(default='float16', metadata={
        'help': 'storage type of the spatial feature maps', 'choices': training_records.FEATURE_DTYPES})
    images_per_shard: int = dataclasses.field(default=1000, metadata={
        'help': 'target number of images per TFRecord shard'})
    max_pixels: int = dataclasses.field(default=DEFAULT_MAX_PIXELS, metadata={
        'help': 'refuse images declaring more pixels than this (decompression bombs)'})
    encoder_batch_size: int = dataclasses.field(default=encoders.DEFAULT_BATCH_SIZE, metadata={
        'help': 'images per encoder call; every call has this shape (the last is padded), so features do '
                'not depend on how the runner batches'})
    keep_restval: bool = dataclasses.field(default=False, metadata={
        'help': 'karpathy: keep "restval" as its own split instead of adding it to train'})
    split: str | None = dataclasses.field(default=None, metadata={
        'help': 'coco: the split of the captions file when its name does not say'})

    def __post_init__(self):
        if self.min_word_count < 1:
            raise ValueError(f'--min-word-count must be at least 1, got {self.min_word_count}')
        if self.images_per_shard < 1:
            raise ValueError(f'--images-per-shard must be at least 1, got {self.images_per_shard}')
        if self.spatial_layer != encoders.DEFAULT_SPATIAL_LAYER and not self.spatial_features:
            raise ValueError(f'--spatial-layer {self.spatial_layer} chooses the map --spatial-features stores; '
                             'add --spatial-features')

    @classmethod
    def from_manifest(cls, document):
        """The config a preprocess manifest's ``options`` record, read tolerantly.

        A manifest written by another version may lack options this one has
        (they take their defaults) or hold options it does not know (they stay
        in the manifest and are left out here), so renaming or adding a flag
        never makes an old output unreadable. Options the config requires and
        the manifest lacks are a one-line ValueError.
        """
        recorded = document[manifest.OPTIONS]
        fields = {field.name: field for field in dataclasses.fields(cls)}
        required = [name for name, field in fields.items() if field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING and name not in recorded]
        if required:
            raise ValueError(f'the preprocess manifest records no {required} in its {manifest.OPTIONS}')
        return cls(**{name: value for name, value in recorded.items() if name in fields})

    def dataset_options(self):
        """The reader options that apply to this dataset format."""
        if self.dataset == 'karpathy':
            return {'keep_restval': self.keep_restval}
        if self.dataset == 'coco':
            return {'split': self.split}
        return {}


def make_preprocessing_fn(min_word_count, max_vocabulary_size):
    """The tf.Transform preprocessing_fn: tokens → vocabulary ids; everything else passes through.

    Learned words get ids after the reserved tokens (schemas.vocabulary), in
    the order tf.Transform writes them (most frequent first); words outside
    the vocabulary become ``<unk>``.
    """
    def preprocessing_fn(inputs):
        ids = tft.compute_and_apply_vocabulary(
            inputs[transform.TOKENS], frequency_threshold=min_word_count, top_k=max_vocabulary_size,
            default_value=-1, vocab_filename=transform.VOCABULARY_NAME)
        ids = tf.sparse.map_values(
            lambda v: tf.where(v < 0, tf.constant(vocabulary.UNK_ID, tf.int64), v + vocabulary.NUM_RESERVED), ids)
        return {
            transform.IMAGE_ID: inputs[transform.IMAGE_ID],
            transform.SPLIT: inputs[transform.SPLIT],
            transform.FEATURES: inputs[transform.FEATURES],
            transform.CAPTION_IDS: ids,
            transform.CAPTION_LENGTHS: inputs[transform.CAPTION_LENGTHS],
        }
    return preprocessing_fn


def _tokenized(image, max_length):
    """CaptionedImage → (image_id, (split, [tokens per caption]))."""
    return image.image_id, (image.split, [tokenize(c, max_length) for c in image.captions])


def _encode_failures(failure):
    """RunInference's (failed batch, exception) → one error record per image of the batch."""
    batch, exc = failure
    return [errors.from_exception('encode', image_id, exc) for image_id, _ in batch]


@beam.typehints.with_output_types(dict[str, typing.Any])
class _Join(beam.DoFn):
    """(image_id, {captions, features}) → a tf.Transform instance, or the number of captions lost."""

    FAILED = 'failed'

    def process(self, element):
        image_id, grouped = element
        (split, captions), = grouped['captions']
        if not grouped['features']:
            # Its read/decode/encode error record is already on the errors output.
            yield beam.pvalue.TaggedOutput(self.FAILED, len(captions))
            return
        yield {
            transform.IMAGE_ID: image_id,
            transform.SPLIT: split,
            transform.FEATURES: np.asarray(grouped['features'][0], np.float32),
            transform.TOKENS: [t for caption in captions for t in caption],
            transform.CAPTION_LENGTHS: [len(caption) for caption in captions],
        }


def _text(value):
    return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def _shard_key(record, images_per_split, images_per_shard):
    """Spreads a split's records over ceil(n / images_per_shard) shards by a stable hash of the id."""
    split, image_id, _ = record
    num_shards = max(1, math.ceil(images_per_split[split] / images_per_shard))
    return (split, zlib.crc32(image_id.encode('utf-8')) % num_shards, num_shards), record


class _WriteShard(beam.DoFn):
    """Writes one shard, records sorted by image id, so reruns give byte-identical files."""

    def __init__(self, output):
        self._output = output

    def process(self, element):
        (split, index, num_shards), records = element
        path = FileSystems.join(self._output, training_records.shard_name(split, index, num_shards))
        records = sorted(records, key=lambda r: r[1])
        with FileSystems.create(path, mime_type='application/octet-stream',
                                compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for _, _, serialized in records:
                f.write(training_records.frame(serialized))
        yield split, len(records)


def _to_record(instance, feature_dtype, spatial, spatial_dtype):
    """A transformed instance (and its image's spatial map) → (split, image_id, serialized tf.train.Example)."""
    image_id, split = (_text(instance[key]) for key in (transform.IMAGE_ID, transform.SPLIT))
    ids = np.asarray(instance[transform.CAPTION_IDS], np.int64)
    lengths = np.asarray(instance[transform.CAPTION_LENGTHS], np.int64)
    captions = np.split(ids, np.cumsum(lengths)[:-1]) if len(lengths) else []
    return split, image_id, training_records.encode(image_id, instance[transform.FEATURES], captions, feature_dtype,
                                                    spatial, spatial_dtype)


def _to_record_with_map(element, feature_dtype, spatial_dtype):
    """(image_id, {'instances': [instance], 'maps': [spatial map]}) → ``_to_record`` of the pair.

    Every image that reaches the records was encoded once: it has one instance and one map.
    """
    _, grouped = element
    (instance,), (spatial,) = grouped['instances'], grouped['maps']
    return _to_record(instance, feature_dtype, spatial, spatial_dtype)


@dataclasses.dataclass
class PreprocessOutputs:
    """The PCollections ``build`` leaves for tests and callers to inspect."""

    records: beam.PCollection   # (split, image_id, serialized record), what the shards hold
    errors: beam.PCollection    # schemas.errors records
    counts: beam.PCollection    # one dict of counts


def build(pipeline, config, encoder, transform_dir, temp_dir, progress=None):
    """Adds the preprocess steps to ``pipeline``.

    Args:
      pipeline: a ``beam.Pipeline``.
      config: a ``PreprocessConfig``.
      encoder: the ``encoders.Encoder`` named by the config (workers load their own copy).
      transform_dir: where tf.Transform writes ``transform_fn/`` (a local
        folder when the runner is local, so TensorFlow's file system never has
        to reach GCS; ``run`` copies it to the output).
      temp_dir: tf.Transform's scratch folder.
      progress: a local folder where the steps count the images read and those encoded or failed
        (``progress``), for a local run's progress lines; None: no counting.

    Returns:
      ``PreprocessOutputs``.
    """
    dataset = pipeline | 'ReadDataset' >> datasets.read_dataset(
        config.dataset, config.captions, config.images, **config.dataset_options())

    captions = dataset.images | 'Tokenize' >> beam.Map(_tokenized, config.max_caption_length)
    decoded = (dataset.images
               | 'ImagePaths' >> beam.Map(lambda image: (image.image_id, image.image_path))
               | 'DecodeImages' >> decode_images.DecodeImages(encoder.input_spec, config.max_pixels))
    handler = KeyedModelHandler(EncoderModelHandler(config.encoder, config.encoder_weights, config.encoder_batch_size,
                                                    config.spatial_layer if config.spatial_features else None))
    encoded, encode_failed = (decoded.images
                              | 'Pixels' >> beam.MapTuple(lambda image_id, image: (image_id, image.pixels))
                              | 'Encode' >> RunInference(handler).with_exception_handling())
    features = encoded | 'Features' >> beam.MapTuple(lambda image_id, result: (image_id, result.inference[0]))
    encode_errors = encode_failed.failed_inferences | 'EncodeErrors' >> beam.FlatMap(_encode_failures)
    if progress:
        # Encoding is most of the work: an image is done when it is encoded or has failed.
        _ = (dataset.images | 'ProgressCount' >> beam.combiners.Count.Globally()
             | 'ProgressTotal' >> beam.ParDo(progress_lib.Total(progress)))
        for label, ended in (('Encoded', encoded), ('DecodeFailed', decoded.errors),
                             ('EncodeFailed', encode_failed.failed_inferences)):
            _ = ended | f'Progress{label}' >> beam.ParDo(progress_lib.Tick(progress))

    joined = ({'captions': captions, 'features': features}
              | 'GroupByImage' >> beam.CoGroupByKey()
              | 'Join' >> beam.ParDo(_Join()).with_outputs(_Join.FAILED, main='instances'))

    raw_metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(transform.raw_feature_spec(encoder.feature_dim)))
    with tft_beam.Context(temp_dir=temp_dir):
        train = joined.instances | 'TrainInstances' >> beam.Filter(
            lambda instance: instance[transform.SPLIT] == 'train')
        transform_fn = (train, raw_metadata) | 'AnalyzeTrain' >> tft_beam.AnalyzeDataset(
            make_preprocessing_fn(config.min_word_count, config.max_vocabulary_size))
        _ = transform_fn | 'WriteTransformFn' >> tft_beam.WriteTransformFn(transform_dir)
        # One TransformDataset for every split: each costs seconds of graph building.
        transformed, _ = (((joined.instances, raw_metadata), transform_fn)
                          | 'Transform' >> tft_beam.TransformDataset())
    if config.spatial_features:
        # Cast to the storage type here (encode would): half the bytes through the join's shuffle.
        maps = encoded | 'SpatialMaps' >> beam.MapTuple(
            lambda image_id, result: (image_id, result.inference[1].astype(config.spatial_dtype)))
        instances = transformed | 'KeyByImage' >> beam.Map(
            lambda instance: (_text(instance[transform.IMAGE_ID]), instance))
        records = ({'instances': instances, 'maps': maps}
                   | 'JoinSpatialMaps' >> beam.CoGroupByKey()
                   | 'Serialize' >> beam.Map(_to_record_with_map, config.feature_dtype, config.spatial_dtype))
    else:
        records = transformed | 'Serialize' >> beam.Map(_to_record, config.feature_dtype, None, config.spatial_dtype)

    images_per_split = (records
                        | 'SplitOfRecord' >> beam.Map(lambda record: record[0])
                        | 'ImagesPerSplit' >> beam.combiners.Count.PerElement())
    written = (records
               | 'AssignShards' >> beam.Map(
                   _shard_key, beam.pvalue.AsDict(images_per_split), config.images_per_shard)
               | 'GroupShards' >> beam.GroupByKey()
               | 'WriteShards' >> beam.ParDo(_WriteShard(config.output)))

    decode_errors = decoded.errors | 'DecodeErrors' >> beam.Values()
    all_errors = ((dataset.errors, decode_errors, encode_errors) | 'AllErrors' >> beam.Flatten())
    _ = all_errors | 'WriteErrors' >> beam.io.WriteToParquet(
        FileSystems.join(config.output, errors.PREPROCESS_DIR, errors.PREPROCESS_PREFIX), errors.SCHEMA,
        file_name_suffix=errors.PARQUET_SUFFIX, num_shards=1)

    counts = _count(pipeline, dataset, decode_errors, encode_errors, joined, written, all_errors)
    return PreprocessOutputs(records=records, errors=all_errors, counts=counts)


def _split_count(split, field):
    """The key of a per-split count (a field of the manifest's SPLITS entry) in ``_count``'s dict."""
    return f'{split}/{field}'


def _count(pipeline, dataset, decode_errors, encode_errors, joined, written, all_errors):
    """One dict of the counts the manifest reports, computed from the data (not from metrics).

    Its keys are the manifest's count names, and ``_split_count`` keys for what each split holds.
    """
    parts = [
        dataset.images | 'CountImagesRead' >> beam.Map(lambda image: (manifest.IMAGES_READ, 1)),
        dataset.images | 'CountCaptionsRead' >> beam.Map(
            lambda image: (manifest.CAPTIONS_READ, len(image.captions))),
        dataset.errors | 'CountDatasetErrors' >> beam.Map(lambda e: (manifest.DATASET_ERRORS, 1)),
        decode_errors | 'CountDecodeFailures' >> beam.Map(lambda e: (manifest.IMAGES_FAILED, 1)),
        encode_errors | 'CountEncodeFailures' >> beam.Map(lambda e: (manifest.IMAGES_FAILED, 1)),
        joined[_Join.FAILED] | 'CountCaptionsFailed' >> beam.Map(lambda n: (manifest.CAPTIONS_FAILED, n)),
        joined.instances | 'CountCaptionsWritten' >> beam.Map(
            lambda instance: (_split_count(instance[transform.SPLIT], manifest.SPLIT_CAPTIONS),
                              len(instance[transform.CAPTION_LENGTHS]))),
        written | 'CountImagesWritten' >> beam.MapTuple(
            lambda split, n: (_split_count(split, manifest.SPLIT_IMAGES), n)),
        written | 'CountShards' >> beam.MapTuple(lambda split, n: (_split_count(split, manifest.SPLIT_SHARDS), 1)),
        all_errors | 'CountErrors' >> beam.Map(lambda e: (manifest.ERROR_RECORDS, 1)),
    ]
    return (parts
            | 'FlattenCounts' >> beam.Flatten()
            | 'SumCounts' >> beam.CombinePerKey(sum)
            | 'CountsToDict' >> beam.combiners.ToDict())


def _write_text(path, text):
    storage.write_bytes(path, text.encode('utf-8'), 'text/plain')


def run_config(config, beam_args=(), progress_every_seconds=progress_lib.EVERY_SECONDS):
    """Runs the preprocess pipeline for ``config``; returns the manifest (None for a Dataflow dry run).

    A local run prints its progress (images encoded or failed of those read) every ``progress_every_seconds``.
    """
    started = datetime.datetime.now(datetime.timezone.utc)
    options = beam_options.pipeline_options(list(beam_args))
    local = beam_options.is_local(options)
    dry_run = beam_options.is_dry_run(options)
    # A local run keeps tf.Transform's files off TensorFlow's own GCS client: scratch space stays on local
    # disk and, for a remote output, the transform output is staged locally and uploaded afterwards.
    # tf.Transform creates its temp dir while the graph is built; a dry run builds the graph and runs
    # nothing, so it gets local scratch too and works offline, where a real Dataflow run needs gs:// paths.
    staged = local and storage.is_remote(config.output)
    counts_path = FileSystems.join(config.output, '.counts', 'counts')
    scratch = tempfile.mkdtemp(prefix='img2txt-preprocess-')
    try:
        transform_dir = os.path.join(scratch, 'transform') if staged or dry_run else config.output
        temp_dir = (os.path.join(scratch, 'tft_tmp') if local or dry_run
                    else FileSystems.join(config.output, 'tmp', 'tft'))
        encoder = encoders.load(config.encoder, weights=config.encoder_weights, spatial_layer=config.spatial_layer,
                                resize_mode=config.resize)
        pipeline = beam.Pipeline(options=options)
        progress = os.path.join(scratch, 'progress') if local and not dry_run else None
        if progress:
            os.makedirs(progress)
        outputs = build(pipeline, config, encoder, transform_dir, temp_dir, progress)
        _ = (outputs.counts | 'CountsJson' >> beam.Map(json.dumps, sort_keys=True)
             | 'WriteCounts' >> beam.io.WriteToText(counts_path, num_shards=1, shard_name_template=''))
        with (progress_lib.Reporter(progress, progress_every_seconds, job='preprocess') if progress
              else contextlib.nullcontext()):
            result = pipeline.run()
            result.wait_until_finish()
        if dry_run:
            return None
        if staged:
            storage.upload_tree(transform_dir, config.output)
        with FileSystems.open(counts_path) as f:
            counts = json.loads(f.read().decode('utf-8'))
        FileSystems.delete([FileSystems.join(config.output, '.counts')])
        return _finish(config, encoder, transform_dir, counts, started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _finish(config, encoder, transform_dir, counts, started):
    """Writes vocab.txt and manifest.json from the finished pipeline's outputs."""
    transform_output = tft.TFTransformOutput(transform_dir)
    learned = [line.decode('utf-8') if isinstance(line, bytes) else line
               for line in transform_output.vocabulary_by_name(transform.VOCABULARY_NAME)]
    if not learned:
        raise ValueError(f'the vocabulary is empty: no word occurs at least {config.min_word_count} times in the '
                         f'train split of {config.captions} (lower --min-word-count?)')
    tokens = list(vocabulary.RESERVED_TOKENS) + learned
    _write_text(FileSystems.join(config.output, vocabulary.VOCABULARY_FILE), '\n'.join(tokens) + '\n')

    splits = {}
    for split in ALL_SPLITS:
        images, captions, shards = (counts.get(_split_count(split, field), 0)
                                    for field in (manifest.SPLIT_IMAGES, manifest.SPLIT_CAPTIONS, manifest.SPLIT_SHARDS))
        if images:
            splits[split] = images, captions, shards
    images_written = sum(images for images, _, _ in splits.values())
    captions_written = sum(captions for _, captions, _ in splits.values())
    result_counts = {
        manifest.IMAGES_READ: counts.get(manifest.IMAGES_READ, 0),
        manifest.IMAGES_WRITTEN: images_written,
        manifest.IMAGES_FAILED: counts.get(manifest.IMAGES_FAILED, 0),
        manifest.CAPTIONS_READ: counts.get(manifest.CAPTIONS_READ, 0),
        manifest.CAPTIONS_WRITTEN: captions_written,
        manifest.CAPTIONS_FAILED: counts.get(manifest.CAPTIONS_FAILED, 0),
        manifest.DATASET_ERRORS: counts.get(manifest.DATASET_ERRORS, 0),
        manifest.ERROR_RECORDS: counts.get(manifest.ERROR_RECORDS, 0),
    }
    document = manifest.preprocess_manifest(
        version=img2txt.__version__, inputs={'captions': config.captions, 'images': config.images},
        options=dataclasses.asdict(config), counts=result_counts, started_at=started.isoformat(),
        finished_at=datetime.datetime.now(datetime.timezone.utc).isoformat(), dataset=config.dataset,
        encoder=encoder.describe(), feature_dtype=config.feature_dtype, vocabulary_size=len(tokens),
        min_word_count=config.min_word_count, splits=splits,
        spatial_dtype=config.spatial_dtype if config.spatial_features else None)
    _write_text(FileSystems.join(config.output, manifest.FILE_NAME), manifest.dumps(document))
    if result_counts[manifest.IMAGES_READ] != images_written + result_counts[manifest.IMAGES_FAILED]:
        logging.error('image counts do not add up: %s', result_counts)
    return document
