"""What the dataset readers share: the records they yield, the caption file helpers, the checks per image.

The readers parse their files into (image id, _Placement or _Caption) pairs
and error records; ``_assemble`` groups the pairs by image and checks them.
"""
import json
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from img2txt.model.tokenizer import EmptyCaptionError, tokenize
from img2txt.schemas import errors

# The splits a CaptionedImage can be in; 'restval' only with
# ReadKarpathy(keep_restval=True).
SPLITS = ('train', 'val', 'test')
RESTVAL = 'restval'

# Tag of the error records inside the readers' ParDos.
ERRORS = 'errors'

_STAGE = 'parse'
_IMAGES = Metrics.counter('datasets', 'images')
_CAPTIONS = Metrics.counter('datasets', 'captions')
_ERRORS = Metrics.counter('datasets', 'errors')


class CaptionedImage(NamedTuple):
    """One image with all its usable raw captions."""

    # The dataset's own id for the image: COCO's numeric id (Karpathy's
    # "cocoid"); otherwise its name as the caption file gives it (Flickr file
    # name, PASCAL "class/name.jpg", JSONL "image" value).
    image_id: str
    # The image file: the images root joined with the dataset's relative name;
    # an absolute path or URL from a JSONL file as it is.
    image_path: str
    # One of SPLITS, or RESTVAL.
    split: str
    # Raw captions in file order, not tokenized; each has at least one word.
    captions: tuple[str, ...]
    # JSONL only: the evaluation subset the image belongs to ('' for none),
    # and phrases every right caption of it contains (e.g. "red square").
    subset: str = ''
    mentions: tuple[str, ...] = ()


class DatasetOutputs(NamedTuple):
    """What every reader returns."""

    # PCollection of CaptionedImage.
    images: beam.PCollection
    # PCollection of schemas.errors records, stage 'parse'.
    errors: beam.PCollection


class _Placement(NamedTuple):
    """One record's word on where an image's file is and which split it is in."""

    image_path: str
    split: str
    location: str
    subset: str = ''
    mentions: tuple[str, ...] = ()


class _Caption(NamedTuple):
    """One caption as read: text may be any JSON value until it is checked."""

    order: tuple
    location: str
    text: Any


class _BadRecord(Exception):
    """A record of a caption file that cannot be used."""

    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = error_type


def _error(input_name, error_type, message):
    return beam.pvalue.TaggedOutput(ERRORS, errors.record(_STAGE, input_name, error_type, message))


def _shorten(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _utf8_error(text):
    """Returns why ``text`` is not valid UTF-8 text, or None.

    The readers decode with 'surrogateescape'; re-encoding the escapes gives
    back the bytes, and decoding those names the offending byte.
    """
    try:
        text.encode('utf-8')
        return None
    except UnicodeEncodeError as exc:
        error = exc
    try:
        text.encode('utf-8', 'surrogateescape').decode('utf-8')
    except UnicodeError as exc:
        error = exc
    return error


def _name(value, field):
    """Returns ``value`` if it is a usable name (non-empty UTF-8 string), else raises _BadRecord."""
    if not isinstance(value, str) or not value.strip():
        raise _BadRecord('InvalidRecord', f'{field} must be a non-empty string, got {_shorten(value)}')
    bad = _utf8_error(value)
    if bad:
        raise _BadRecord(type(bad).__name__, f'{field} is not valid UTF-8: {bad}')
    return value


def _fields(record):
    if not isinstance(record, dict):
        raise _BadRecord('InvalidRecord', f'expected a JSON object, got {_shorten(record)}')
    return record


def _coco_id(record, field):
    """Returns ``record[field]`` as a COCO image id (an integer or a string), else raises _BadRecord."""
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == '':
        raise _BadRecord('InvalidRecord', f'{field} must be an integer or a string, got {_shorten(value)}')
    return str(value)


def _caption_problem(text):
    """Returns (error type, message) if ``text`` cannot be a caption, else None."""
    if not isinstance(text, str):
        return 'InvalidCaption', f'caption must be a string, got {_shorten(text)}'
    bad = _utf8_error(text)
    if bad:
        return type(bad).__name__, f'caption is not valid UTF-8: {bad}'
    # NLTK's regular expressions run under a time limit; a pathological
    # caption must cost itself only.
    try:
        tokenize(text)
    except (EmptyCaptionError, TimeoutError) as exc:
        return type(exc).__name__, str(exc)
    return None


def _read_lines(path):
    """Yields (line number from 1, text) for each line of ``path`` that is not blank.

    Streams the file; undecodable bytes stay as surrogate escapes for
    _utf8_error to report.
    """
    with FileSystems.open(path) as f:
        for number, line in enumerate(iter(f.readline, b''), start=1):
            text = line.decode('utf-8', 'surrogateescape').rstrip('\r\n')
            if number == 1:
                text = text.removeprefix('\ufeff')
            if text.strip():
                yield number, text


def _read_json(path):
    """Returns the parsed JSON document at ``path``; raises ValueError naming it if it is not JSON."""
    with FileSystems.open(path) as f:
        text = f.read().decode('utf-8', 'surrogateescape').removeprefix('\ufeff')
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path} is not valid JSON: {exc}') from exc


def _check_exists(path):
    if not FileSystems.exists(path):
        raise FileNotFoundError(f'caption file not found: {path}')


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; expected one of {SPLITS}')
    return split


class _CheckImage(beam.DoFn):
    """Turns one image's grouped records into a CaptionedImage and error records."""

    def process(self, element):
        image_id, parts = element
        placements = {}
        captions = []
        for part in parts:
            if isinstance(part, _Placement):
                placements.setdefault((part.image_path, part.split, part.subset, part.mentions), part.location)
            else:
                captions.append(part)
        captions.sort(key=lambda caption: caption.order)
        if not placements:
            # Only the Flickr readers place images by separate split lists.
            yield _error(image_id, 'UnassignedSplit',
                         f'the image is in none of the split lists; its {len(captions)} '
                         f'captions (at {captions[0].location}, ...) are not used')
            return
        if len(placements) > 1:
            seen = '; '.join(f'{path} in {split}{f" subset {subset}" if subset else ""} (at {location})'
                             for (path, split, subset, _), location in sorted(placements.items()))
            yield _error(image_id, 'ConflictingRecords',
                         f'records disagree on the image: {seen}; its {len(captions)} captions '
                         f'are not used')
            return
        [(image_path, split, subset, mentions)] = placements
        kept = []
        for index, caption in enumerate(captions):
            problem = _caption_problem(caption.text)
            if problem:
                error_type, message = problem
                yield _error(f'{image_id}#{index}', error_type, f'{message} (at {caption.location})')
            else:
                kept.append(caption.text)
        if not kept:
            reason = (f'all {len(captions)} of its captions were rejected' if captions
                      else f'it has no captions (at {next(iter(placements.values()))})')
            yield _error(image_id, 'NoCaptions', f'the image cannot be used: {reason}')
            return
        _IMAGES.inc()
        _CAPTIONS.inc(len(kept))
        yield CaptionedImage(image_id, image_path, split, tuple(kept), subset, mentions)


def _count_error(record):
    _ERRORS.inc()
    return record


def _assemble(*parsed):
    """Groups the parsed records of a reader by image; returns DatasetOutputs.

    Each of ``parsed`` is a ParDo's outputs: (image id, _Placement or
    _Caption) pairs as main output, error records tagged ERRORS.
    """
    checked = (
        tuple(p.parts for p in parsed)
        | 'AllRecords' >> beam.Flatten()
        | 'GroupByImage' >> beam.GroupByKey()
        | 'CheckCaptions' >> beam.ParDo(_CheckImage()).with_outputs(ERRORS, main='images'))
    all_errors = (
        tuple(p[ERRORS] for p in parsed) + (checked[ERRORS],)
        | 'AllErrors' >> beam.Flatten()
        | 'CountErrors' >> beam.Map(_count_error))
    return DatasetOutputs(checked.images, all_errors)


def _parse(pbegin, label, path, parser):
    """Applies ``parser`` (a DoFn over caption file paths) to ``path``."""
    return (pbegin
            | 'CaptionFile' >> beam.Create([path])
            | label >> beam.ParDo(parser).with_outputs(ERRORS, main='parts'))
