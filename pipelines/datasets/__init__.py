"""Caption dataset readers: one PTransform per on-disk format.

Every reader takes ``captions`` (the caption file, or for PASCAL the folder of
sentence files; local or ``gs://``) and ``images`` (the folder or ``gs://``
prefix the dataset's image names are relative to) and returns
``DatasetOutputs``: ``images``, a PCollection with one ``CaptionedImage`` per
image holding all its usable raw captions, and ``errors``, a PCollection of
``schemas.errors`` records (stage 'parse') for everything it could not use.
``read_dataset(fmt, captions, images, ...)`` picks the reader by format name:

  coco       COCO captions JSON (captions_train2014.json, ...)   ReadCoco
  karpathy   Karpathy split JSON (dataset_coco.json, ...)        ReadKarpathy
  flickr8k   Flickr8k.token.txt plus the Flickr_8k.*Images.txt   ReadFlickr8k
  flickr30k  results_20130124.token                              ReadFlickr30k
  pascal     PASCAL 1k sentences, one text file per image        ReadPascal
  jsonl      one {"image", "captions", "split"[, "subset", "mentions"]} object per line  ReadJsonl

Each reader is in its format's module (both Flickr readers in ``flickr``);
``common`` holds the records and checks they share.

Rules shared by all formats:

- Nothing is dropped silently. A line or record that cannot be parsed is an
  error record naming ``file:line`` (or the record's place in a JSON file). A
  caption that is not a string, not valid UTF-8, or has no words under
  ``model.tokenizer.tokenize`` is an error record named ``IMAGE_ID#INDEX``
  (INDEX: its position among the image's captions in file order) and the
  image keeps its other captions. An image left with no caption is an error
  record named by its id: it can be neither trained nor evaluated on.
- An image named by several records (repeated JSONL lines, repeated COCO
  image entries, ...) gets the captions of all of them; if they disagree on
  its path or split, the image is an error record (ConflictingRecords).
- Files are read as bytes and decoded per line (per file for JSON) keeping
  undecodable bytes as surrogate escapes, so one bad caption costs that
  caption only. A UTF-8 byte-order mark is ignored; lines holding only
  whitespace are not records and are skipped.
- A caption file that is missing, unreadable, not JSON, or not shaped like its
  format is a user error, not a per-element one: it raises, naming the path.
  Missing files are found when the reader is constructed (``validate=False``
  skips that, e.g. to build a Dataflow graph offline).
- Image files are not opened here; the decoding stage reports missing ones.
- Captions keep their file order. PCollections have no order, so nothing else
  does: sinks that want a stable order sort by ``image_id``.
- JSON caption files are parsed whole in one DoFn (a COCO captions file is
  about 20 MB, Karpathy's dataset_coco.json about 140 MB); line formats are
  streamed. Either way the records are grouped by image with a GroupByKey,
  so the caption checks, which tokenize every caption, run in parallel.

Counters in the 'datasets' namespace: 'images' and 'captions' count what is
emitted in ``images``, 'errors' counts the error records.

``scenes`` is the other way round: it writes a dataset, the demo's generated
scenes, in the jsonl format.
"""
import json
import os
import tempfile

import apache_beam as beam

from img2txt.pipelines import beam_options
from img2txt.pipelines.datasets.coco import ReadCoco
from img2txt.pipelines.datasets.common import ERRORS, RESTVAL, SPLITS, CaptionedImage, DatasetOutputs
from img2txt.pipelines.datasets.flickr import FLICKR8K_SPLIT_FILES, ReadFlickr8k, ReadFlickr30k
from img2txt.pipelines.datasets.jsonl import ReadJsonl
from img2txt.pipelines.datasets.karpathy import ReadKarpathy
from img2txt.pipelines.datasets.pascal import ReadPascal

__all__ = [
    'SPLITS', 'RESTVAL', 'ERRORS', 'CaptionedImage', 'DatasetOutputs', 'ReadCoco', 'ReadKarpathy',
    'FLICKR8K_SPLIT_FILES', 'ReadFlickr8k', 'ReadFlickr30k', 'ReadPascal', 'ReadJsonl', 'FORMATS', 'read_dataset',
    'load_dataset',
]

_READERS = {
    'coco': ReadCoco,
    'karpathy': ReadKarpathy,
    'flickr8k': ReadFlickr8k,
    'flickr30k': ReadFlickr30k,
    'pascal': ReadPascal,
    'jsonl': ReadJsonl,
}
FORMATS = tuple(_READERS)


def read_dataset(fmt, captions, images, **options):
    """Returns the reader PTransform for dataset format ``fmt`` (one of FORMATS).

    Apply it to a pipeline: ``outputs = pipeline | 'ReadDataset' >>
    read_dataset('coco', captions, images)``; it yields DatasetOutputs.
    ``options`` are the reader's own keyword arguments (split, keep_restval,
    split_files, validate).

    Raises:
      ValueError: ``fmt`` is not a known format, or an option is invalid.
      FileNotFoundError: a caption file does not exist (unless validate=False).
    """
    try:
        reader = _READERS[fmt]
    except KeyError:
        raise ValueError(f'unknown dataset format {fmt!r}; known formats: {", ".join(FORMATS)}') from None
    return reader(captions, images, **options)


def load_dataset(fmt, captions, images, beam_args=(), **options):
    """Reads a whole dataset into this process: ``(images, errors)``, lists of CaptionedImage and error records.

    For jobs that need every caption in one place (evaluation scores a
    corpus); the reader runs on a local Beam runner and its output comes
    back through a temporary file. Arguments as ``read_dataset``.
    """
    with tempfile.TemporaryDirectory(prefix='img2txt-dataset-') as scratch:
        prefix = os.path.join(scratch, 'records')
        with beam.Pipeline(options=beam_options.pipeline_options(list(beam_args))) as pipeline:
            outputs = pipeline | 'ReadDataset' >> read_dataset(fmt, captions, images, **options)
            lines = ((outputs.images | 'Images' >> beam.Map(lambda image: json.dumps(['image', image._asdict()])),
                      outputs.errors | 'Errors' >> beam.Map(lambda record: json.dumps(['error', record])))
                     | 'All' >> beam.Flatten())
            _ = lines | 'Write' >> beam.io.WriteToText(prefix)
        read_images, read_errors = [], []
        for path in sorted(os.listdir(scratch)):
            with open(os.path.join(scratch, path), encoding='utf-8') as f:
                for kind, value in map(json.loads, f):
                    if kind == 'image':
                        value.update(captions=tuple(value['captions']), mentions=tuple(value['mentions']))
                        read_images.append(CaptionedImage(**value))
                    else:
                        read_errors.append(value)
    return sorted(read_images), read_errors
