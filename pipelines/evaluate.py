"""Evaluate: caption a dataset split with an exported captioner and score it with the COCO metrics.

Two sources for the split:

- ``data``: a preprocess output. Its manifest names the dataset the records
  came from; the references are that dataset's raw captions (not the
  vocabulary ids, which lost the unknown words), and the candidates come from
  the stored features (``caption_features``), so no image is decoded again.
  The features must come from the export's encoder.
- ``dataset``, ``captions``, ``images``: a dataset read directly
  (``pipelines.datasets``); images are decoded by the pipelines' decoder.

Writes ``metrics.json`` (per subset, when the dataset defines subsets) and
``images.parquet`` (``schemas.evaluation``). Images the split names but that
cannot be captioned (no record in the preprocess output, a file that does not
decode) are not scored; the metrics file counts and names them.
"""
import collections
import dataclasses
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from img2txt.model import evaluation, storage
from img2txt.model.networks import decoders
from img2txt.model.serving import image_decoding
from img2txt.model.training import input_pipeline
from img2txt.model.serving.captioner import DEFAULT_BATCH_SIZE, Captioner
from img2txt.pipelines import datasets
from img2txt.schemas import evaluation as schema, manifest, training_records

# How many unscored images metrics.json names (it counts all of them).
_NAMED_FAILURES = 100


@dataclasses.dataclass
class EvaluateConfig:
    """Options of the evaluate job; each field is the flag of the same name."""

    model: str = dataclasses.field(metadata={'help': 'exported captioner (MODEL_DIR/export/STEP), local or gs://'})
    output: str = dataclasses.field(metadata={'help': 'folder for metrics.json and images.parquet, local or gs://'})
    data: str | None = dataclasses.field(default=None, metadata={
        'help': 'output folder of img2txt preprocess: evaluate its records of --split'})
    split: str = dataclasses.field(default='test', metadata={
        'help': 'the split to evaluate', 'choices': datasets.SPLITS})
    dataset: str | None = dataclasses.field(default=None, metadata={
        'help': 'instead of --data: a caption dataset format', 'choices': datasets.FORMATS})
    captions: str | None = dataclasses.field(default=None, metadata={'help': 'with --dataset: its caption file'})
    images: str | None = dataclasses.field(default=None, metadata={'help': 'with --dataset: its images folder'})
    batch_size: int = dataclasses.field(default=DEFAULT_BATCH_SIZE, metadata={'help': 'images per captioner call'})
    meteor: bool = dataclasses.field(default=True, metadata={
        'help': 'compute METEOR (needs java on PATH; reported as skipped otherwise)'})

    def __post_init__(self):
        direct = (self.dataset, self.captions, self.images)
        if self.data and any(direct):
            raise ValueError('give either --data or --dataset/--captions/--images, not both')
        if not self.data and not all(direct):
            raise ValueError('nothing to evaluate: give --data PREPROCESSED_DIR, or --dataset, --captions and --images')


def _preprocessed(config, captioner, beam_args):
    """(images of the split, their candidates by id, failures) from a preprocess output's records."""
    from img2txt.pipelines import preprocess  # tf.Transform: imported only on this path
    document = input_pipeline.read_manifest(config.data)
    encoder = document[manifest.ENCODER]
    if encoder[manifest.ENCODER_ID] != captioner.encoder_id:
        raise ValueError(f'{config.data} holds features of encoder {encoder[manifest.ENCODER_ID]}, but the model '
                         f'was trained on {captioner.encoder_id}: evaluate with --dataset/--captions/--images')
    split = document[manifest.SPLITS].get(config.split)
    if not split:
        raise ValueError(f'{config.data} has no {config.split} split; it has {sorted(document[manifest.SPLITS])}')
    options = preprocess.PreprocessConfig.from_manifest(document).dataset_options()
    inputs = document[manifest.INPUTS]
    images, _ = datasets.load_dataset(document[manifest.DATASET], inputs['captions'], inputs['images'],
                                      beam_args, **options)
    images = [image for image in images if image.split == config.split]
    paths = FileSystems.match([FileSystems.join(config.data, split[manifest.SPLIT_PATTERN])])[0].metadata_list
    # An attention captioner reads each image's spatial map, which preprocess stores with --spatial-features.
    spatial = decoders.get(captioner.decoder).reads_spatial_map
    spatial_shape = input_pipeline.spatial_map_shape(document, config.data) if spatial else None
    records = tf.data.TFRecordDataset(sorted(m.path for m in paths)).map(
        lambda serialized: training_records.parse(serialized, encoder[manifest.ENCODER_FEATURE_DIM],
                                                  document[manifest.FEATURE_DTYPE], spatial_shape,
                                                  document.get(manifest.SPATIAL_DTYPE)))
    key = 'spatial' if spatial else 'features'
    features = {r['image_id'].numpy().decode('utf-8'): r[key].numpy() for r in records}
    found = [image for image in images if image.image_id in features]
    failures = [(image.image_id, 'no record in the preprocess output (it failed there)')
                for image in images if image.image_id not in features]
    candidates = captioner.caption_features(np.stack([features[image.image_id] for image in found])) if found else []
    return found, candidates, failures


def _direct(config, captioner, beam_args):
    """(images of the split, their candidates, failures) from a dataset and its image files."""
    images, _ = datasets.load_dataset(config.dataset, config.captions, config.images, beam_args)
    found, crops, failures = [], [], []
    for image in (image for image in images if image.split == config.split):
        try:
            crops.append(image_decoding.decode(storage.read_bytes(image.image_path), captioner.input_spec))
            found.append(image)
        except (OSError, image_decoding.ImageDecodeError) as e:
            failures.append((image.image_id, f'{type(e).__name__}: {e}'))
    return found, captioner.caption(np.stack(crops)) if crops else [], failures


def _subset_metrics(images, best, meteor):
    """{subset: metrics} for every image (``schema.ALL``) and each subset; and each image's CIDEr-D."""
    groups = collections.defaultdict(list)
    for image in images:
        groups[schema.ALL].append(image)
        if image.subset:
            groups[image.subset].append(image)
    result, per_image = {}, {}
    for name, members in sorted(groups.items()):
        corpus, cider = evaluation.score({i.image_id: best[i.image_id] for i in members},
                                         {i.image_id: list(i.captions) for i in members}, meteor=meteor)
        if name == schema.ALL:
            per_image = cider
        with_mentions = [i for i in members if i.mentions]
        if with_mentions:
            corpus[schema.MENTIONS_RIGHT] = float(np.mean(
                [evaluation.names_all(best[i.image_id], i.mentions) for i in with_mentions]))
        result[name] = {schema.IMAGES_COUNT: len(members), **corpus}
    return result, per_image


def run_config(config, beam_args=()):
    """Evaluates; writes metrics.json and images.parquet under ``config.output``; returns the metrics document."""
    captioner = Captioner.load(config.model, config.batch_size)
    source = _preprocessed if config.data else _direct
    images, candidates, failures = source(config, captioner, beam_args)
    if not images:
        raise ValueError(f'no image of the {config.split} split could be captioned'
                         + (f' ({failures[0][0]}: {failures[0][1]})' if failures else ''))
    best = {image.image_id: options[0].caption if options else '' for image, options in zip(images, candidates)}
    subsets, per_image = _subset_metrics(images, best, config.meteor)
    document = {
        schema.MODEL: config.model,
        schema.MODEL_ID: captioner.model_id,
        schema.SPLIT: config.split,
        schema.DATA: ({schema.DATA_DIR: config.data} if config.data else
                      {schema.DATA_DATASET: config.dataset, schema.DATA_CAPTIONS: config.captions,
                       schema.DATA_IMAGES: config.images}),
        schema.SUBSETS: subsets,
        schema.NOT_SCORED: len(failures),
        schema.NOT_SCORED_EXAMPLES: [{schema.IMAGE_ID: image_id, schema.NOT_SCORED_REASON: reason}
                                     for image_id, reason in failures[:_NAMED_FAILURES]],
    }
    rows = [{schema.IMAGE_ID: i.image_id, schema.IMAGE_PATH: i.image_path, schema.SUBSET: i.subset,
             schema.CAPTION: best[i.image_id], schema.REFERENCES: list(i.captions),
             schema.IMAGE_CIDER_D: per_image[i.image_id], schema.MENTIONS: list(i.mentions),
             schema.NAMES_MENTIONS: evaluation.names_all(best[i.image_id], i.mentions) if i.mentions else None}
            for i in images]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema.IMAGES_SCHEMA), buffer)
    storage.write_bytes(FileSystems.join(config.output, schema.IMAGES_FILE), buffer.getvalue(), 'application/x-parquet')
    storage.write_bytes(FileSystems.join(config.output, schema.METRICS_FILE),
                 (json.dumps(document, indent=2, sort_keys=True) + '\n').encode('utf-8'), 'application/json')
    return document


def table(document):
    """The metrics document as a text table: one row per subset, one column per metric."""
    subsets = document[schema.SUBSETS]
    columns = [*schema.METRICS] + ([schema.MENTIONS_RIGHT] if any(
        schema.MENTIONS_RIGHT in values for values in subsets.values()) else [])
    widths = [max(8, len(column)) for column in columns]
    lines = [f'{"subset":<10} {"images":>6}  ' + '  '.join(f'{c:>{w}}' for c, w in zip(columns, widths))]
    for name in [schema.ALL] + sorted(set(subsets) - {schema.ALL}):
        values = subsets[name]
        cells = [f'{values[c]:>{w}.3f}' if isinstance(values.get(c), float) else f'{"skipped":>{w}}'
                 for c, w in zip(columns, widths)]
        lines.append(f'{name:<10} {values[schema.IMAGES_COUNT]:>6}  ' + '  '.join(cells))
    if subsets[schema.ALL][schema.METEOR] == schema.METEOR_SKIPPED:
        lines.append(f'METEOR {schema.METEOR_SKIPPED}')
    return '\n'.join(lines)
