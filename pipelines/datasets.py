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
"""
import json
import os
import re
import tempfile
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from img2txt.model.tokenizer import EmptyCaptionError, tokenize
from img2txt.pipelines import beam_options
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


# COCO ----------------------------------------------------------------------

# "train", "val" or "test" not preceded by a letter: captions_train2014.json,
# captions_val2017.json, image_info_test2014.json; not "restval".
_SPLIT_IN_NAME = re.compile(r'(?<![a-z])(train|val|test)', re.IGNORECASE)


def _coco_id(record, field):
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == '':
        raise _BadRecord('InvalidRecord', f'{field} must be an integer or a string, got {_shorten(value)}')
    return str(value)


class _ParseCoco(beam.DoFn):
    """Parses a COCO captions file into image placements and captions."""

    def __init__(self, images, split):
        self._images = images
        self._split = split

    def process(self, path):
        data = _read_json(path)
        if not (isinstance(data, dict) and isinstance(data.get('images'), list)
                and isinstance(data.get('annotations'), list)):
            raise ValueError(f'{path} is not a COCO captions file: expected an object with '
                             f'"images" and "annotations" lists')
        known = set()
        for i, image in enumerate(data['images']):
            where = f'{path}:images[{i}]'
            try:
                image_id = _coco_id(_fields(image), 'id')
                file_name = _name(image.get('file_name'), 'file_name')
            except _BadRecord as exc:
                yield _error(where, exc.error_type, str(exc))
                continue
            known.add(image_id)
            yield image_id, _Placement(FileSystems.join(self._images, file_name), self._split, where)
        for i, annotation in enumerate(data['annotations']):
            where = (f'{path}:annotation {annotation["id"]}'
                     if isinstance(annotation, dict) and 'id' in annotation
                     else f'{path}:annotations[{i}]')
            try:
                image_id = _coco_id(_fields(annotation), 'image_id')
            except _BadRecord as exc:
                yield _error(where, exc.error_type, str(exc))
                continue
            if image_id not in known:
                yield _error(where, 'UnknownImage', f'image_id {image_id} is not in the file\'s "images"')
                continue
            yield image_id, _Caption((i,), where, annotation.get('caption'))


class ReadCoco(beam.PTransform):
    """Reads a COCO captions file (captions_train2014.json, captions_val2017.json, ...).

    ``images`` [{id, file_name, ...}] and ``annotations`` [{id, image_id,
    caption}]; image_path is ``images`` joined with file_name (so ``images``
    is e.g. .../train2014). The split is ``split`` if given, else read from
    the file name (train, val or test in it); construction fails if neither
    tells. Annotations of ids missing from "images" are error records
    (UnknownImage, named 'FILE:annotation ID'), as are images without
    captions (NoCaptions).
    """

    def __init__(self, captions, images, split=None, validate=True):
        super().__init__()
        if split is None:
            found = {m.lower() for m in _SPLIT_IN_NAME.findall(FileSystems.split(captions)[1])}
            if len(found) != 1:
                raise ValueError(f'cannot tell the split of {captions} from its name; pass split '
                                 f'(one of {SPLITS})')
            split = found.pop()
        self._split = _check_split(split)
        if validate:
            _check_exists(captions)
        self._captions = captions
        self._images = images

    def expand(self, pbegin):
        return _assemble(_parse(pbegin, 'ReadCocoJson', self._captions,
                                _ParseCoco(self._images, self._split)))


# Karpathy ------------------------------------------------------------------

class _ParseKarpathy(beam.DoFn):
    """Parses a Karpathy split file into image placements and captions."""

    def __init__(self, images, keep_restval):
        self._images = images
        self._keep_restval = keep_restval

    def process(self, path):
        data = _read_json(path)
        if not (isinstance(data, dict) and isinstance(data.get('images'), list)):
            raise ValueError(f'{path} is not a Karpathy split file: expected an object with an '
                             f'"images" list')
        for i, image in enumerate(data['images']):
            where = f'{path}:images[{i}]'
            try:
                filename = _name(_fields(image).get('filename'), 'filename')
                filepath = image.get('filepath')
                parts = (_name(filepath, 'filepath'), filename) if filepath else (filename,)
                split = image.get('split')
                if split not in SPLITS + (RESTVAL,):
                    raise _BadRecord('UnknownSplit', f'split must be one of {SPLITS + (RESTVAL,)}, '
                                                     f'got {_shorten(split)}')
                sentences = image.get('sentences')
                if not isinstance(sentences, list):
                    raise _BadRecord('InvalidRecord', f'sentences must be a list, got {_shorten(sentences)}')
                image_id = _coco_id(image, 'cocoid') if 'cocoid' in image else '/'.join(parts)
            except _BadRecord as exc:
                yield _error(where, exc.error_type, str(exc))
                continue
            if split == RESTVAL and not self._keep_restval:
                split = 'train'
            yield image_id, _Placement(FileSystems.join(self._images, *parts), split, where)
            for j, sentence in enumerate(sentences):
                text = sentence.get('raw') if isinstance(sentence, dict) else sentence
                yield image_id, _Caption((i, j), f'{where}.sentences[{j}]', text)


class ReadKarpathy(beam.PTransform):
    """Reads a Karpathy split file (dataset_coco.json, dataset_flickr8k.json, dataset_flickr30k.json).

    ``images`` [{filepath?, filename, split, sentences [{raw, tokens}], cocoid?}];
    the ``raw`` sentences are the captions (``tokens`` are Karpathy's
    tokenization, not ours). image_path is ``images``/filepath/filename
    (``images`` is the COCO root holding train2014/ and val2014/, or the
    Flickr image folder). image_id is the cocoid when there is one (as
    ReadCoco's), else filepath/filename (as the Flickr readers' for Flickr).
    Split 'restval' (COCO val images given to training) becomes 'train'
    unless ``keep_restval``.
    """

    def __init__(self, captions, images, keep_restval=False, validate=True):
        super().__init__()
        if validate:
            _check_exists(captions)
        self._captions = captions
        self._images = images
        self._keep_restval = keep_restval

    def expand(self, pbegin):
        return _assemble(_parse(pbegin, 'ReadKarpathyJson', self._captions,
                                _ParseKarpathy(self._images, self._keep_restval)))


# Flickr --------------------------------------------------------------------

class _ParseTokenFile(beam.DoFn):
    """Parses a Flickr token file: 'NAME.jpg#N<TAB>caption' per line.

    Places each image in ``split`` unless that is None (split lists place them).
    """

    def __init__(self, images, split):
        self._images = images
        self._split = split

    def process(self, path):
        for number, line in _read_lines(path):
            where = f'{path}:{number}'
            key, tab, caption = line.partition('\t')
            name, hash_sign, index = key.strip().rpartition('#')
            if not (tab and hash_sign and name and index.isascii() and index.isdigit()):
                yield _error(where, 'MalformedLine',
                             f'expected IMAGE#N<TAB>caption, got {_shorten(line)}')
                continue
            try:
                _name(name, 'image name')
            except _BadRecord as exc:
                yield _error(where, exc.error_type, str(exc))
                continue
            if self._split:
                yield name, _Placement(FileSystems.join(self._images, name), self._split, where)
            yield name, _Caption((int(index), number), where, caption)


class _ParseSplitList(beam.DoFn):
    """Parses (split, path of a list of image names, one a line) into placements."""

    def __init__(self, images):
        self._images = images

    def process(self, split_and_path):
        split, path = split_and_path
        for number, line in _read_lines(path):
            where = f'{path}:{number}'
            try:
                name = _name(line.strip(), 'image name')
            except _BadRecord as exc:
                yield _error(where, exc.error_type, str(exc))
                continue
            yield name, _Placement(FileSystems.join(self._images, name), split, where)


class _ReadFlickr(beam.PTransform):
    """A Flickr token file, with images placed by split lists or all in 'train'."""

    def __init__(self, captions, images, split_files=None, validate=True):
        super().__init__()
        for split in split_files or {}:
            _check_split(split)
        if validate:
            _check_exists(captions)
            for path in (split_files or {}).values():
                _check_exists(path)
        self._captions = captions
        self._images = images
        self._split_files = split_files

    def expand(self, pbegin):
        tokens = _parse(pbegin, 'ReadTokenFile', self._captions,
                        _ParseTokenFile(self._images, None if self._split_files else 'train'))
        if not self._split_files:
            return _assemble(tokens)
        lists = (pbegin
                 | 'SplitLists' >> beam.Create(sorted(self._split_files.items()))
                 | 'ReadSplitLists' >> beam.ParDo(_ParseSplitList(self._images)).with_outputs(
                     ERRORS, main='parts'))
        return _assemble(tokens, lists)


# Names of the Flickr8k split lists, found beside Flickr8k.token.txt.
FLICKR8K_SPLIT_FILES = {
    'train': 'Flickr_8k.trainImages.txt',
    'val': 'Flickr_8k.devImages.txt',
    'test': 'Flickr_8k.testImages.txt',
}


class ReadFlickr8k(_ReadFlickr):
    """Reads Flickr8k: Flickr8k.token.txt ('NAME.jpg#N<TAB>caption') and its split lists.

    ``split_files`` maps split to a list of image names, one a line; by
    default the three FLICKR8K_SPLIT_FILES beside the token file (the 'dev'
    list is 'val'). Images with captions in no list are error records
    (UnassignedSplit): the official lists cover all 8,000 images, and the
    token file's stray '2258277193_586949ec62.jpg.1' entry should be seen,
    not trained on. Images in two lists are error records
    (ConflictingRecords); listed images without captions are NoCaptions.
    """

    def __init__(self, captions, images, split_files=None, validate=True):
        if split_files is None:
            folder = FileSystems.split(captions)[0]
            split_files = {split: FileSystems.join(folder, name)
                           for split, name in FLICKR8K_SPLIT_FILES.items()}
        super().__init__(captions, images, split_files, validate)


class ReadFlickr30k(_ReadFlickr):
    """Reads Flickr30k's results_20130124.token ('NAME.jpg#N<TAB>caption').

    Flickr30k has no official split: every image is 'train' unless
    ``split_files`` (split -> list of image names, one a line) is given, in
    which case images are placed as by ReadFlickr8k. For the usual split use
    the Karpathy file dataset_flickr30k.json with ReadKarpathy.
    """


# PASCAL --------------------------------------------------------------------

class _ParsePascalFile(beam.DoFn):
    """Parses one PASCAL sentence file: its image's placement and one caption a line."""

    def __init__(self, images, split):
        self._images = images
        self._split = split

    def process(self, metadata):
        path = metadata.path
        folder, name = FileSystems.split(path)
        category = FileSystems.split(folder)[1]
        stem = name.removesuffix('txt').removesuffix('.')
        image_id = f'{category}/{stem}.jpg'
        yield image_id, _Placement(FileSystems.join(self._images, category, f'{stem}.jpg'),
                                   self._split, path)
        for number, line in _read_lines(path):
            yield image_id, _Caption((number,), f'{path}:{number}', line)


class ReadPascal(beam.PTransform):
    """Reads the PASCAL 1k sentences: CLASS/NAME.txt with one sentence a line, image CLASS/NAME.jpg.

    ``captions`` is the folder holding the class folders of sentence files,
    ``images`` the one holding the class folders of images. The dataset's
    web page offers no archive; the copies in circulation are either one
    folder with NAME.txt beside NAME.jpg (pass the same folder twice) or the
    layout of the common download script, ROOT/sentence/CLASS/NAMEtxt (sic,
    no dot) and ROOT/dataset/CLASS/NAME.jpg (pass ROOT/sentence and
    ROOT/dataset); both NAME.txt and NAMEtxt are read. image_id is
    'CLASS/NAME.jpg'. There is no official split: every image is in
    ``split``.
    """

    def __init__(self, captions, images, split='train', validate=True):
        super().__init__()
        self._pattern = FileSystems.join(captions, '*', '*txt')
        if validate and not FileSystems.match([self._pattern])[0].metadata_list:
            raise FileNotFoundError(f'no PASCAL sentence files match {self._pattern}')
        self._images = images
        self._split = _check_split(split)

    def expand(self, pbegin):
        return _assemble(
            pbegin
            | 'MatchSentenceFiles' >> fileio.MatchFiles(
                self._pattern, empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW)
            | 'ReadSentenceFiles' >> beam.ParDo(
                _ParsePascalFile(self._images, self._split)).with_outputs(ERRORS, main='parts'))


# JSON lines ----------------------------------------------------------------

class _ParseJsonLines(beam.DoFn):
    """Parses a JSON-lines caption file into image placements and captions."""

    def __init__(self, images):
        self._images = images

    def process(self, path):
        for number, line in _read_lines(path):
            where = f'{path}:{number}'
            try:
                record = _fields(json.loads(line))
                image = _name(record.get('image'), 'image')
                captions = record.get('captions')
                if not isinstance(captions, list):
                    raise _BadRecord('InvalidRecord', f'captions must be a list, got {_shorten(captions)}')
                split = record.get('split')
                if split is None:
                    split = 'train'
                elif split not in SPLITS:
                    raise _BadRecord('UnknownSplit', f'split must be one of {SPLITS}, got {_shorten(split)}')
                subset = record.get('subset') or ''
                if not isinstance(subset, str):
                    raise _BadRecord('InvalidRecord', f'subset must be a string, got {_shorten(subset)}')
                mentions = record.get('mentions') or []
                if not (isinstance(mentions, list) and all(isinstance(m, str) and m.strip() for m in mentions)):
                    raise _BadRecord('InvalidRecord', f'mentions must be a list of phrases, got {_shorten(mentions)}')
            except json.JSONDecodeError as exc:
                yield _error(where, type(exc).__name__, str(exc))
                continue
            except _BadRecord as exc:
                yield _error(where, exc.error_type, str(exc))
                continue
            is_absolute = FileSystems.get_scheme(image) is not None or os.path.isabs(image)
            image_path = image if is_absolute else FileSystems.join(self._images, image)
            yield image, _Placement(image_path, split, where, subset, tuple(mentions))
            for i, caption in enumerate(captions):
                yield image, _Caption((number, i), f'{where} captions[{i}]', caption)


class ReadJsonl(beam.PTransform):
    """Reads JSON lines: {"image": PATH_OR_NAME, "captions": [...], "split": "train"} per line.

    Relative image paths are under ``images``; absolute paths and URLs
    (gs://...) are used as they are, and the image value is the image_id. A
    missing or null split is 'train'; any other value must be one of SPLITS.
    Optional keys for evaluation: "subset" (a name, e.g. "held_out"; metrics
    are reported per subset) and "mentions" (phrases every right caption
    contains, e.g. ["red square", "blue circle"]). Other keys are ignored. Lines that are not JSON objects of this shape are
    error records named 'FILE:LINE'; an image on several lines gets the
    captions of all of them.
    """

    def __init__(self, captions, images, validate=True):
        super().__init__()
        if validate:
            _check_exists(captions)
        self._captions = captions
        self._images = images

    def expand(self, pbegin):
        return _assemble(_parse(pbegin, 'ReadJsonLines', self._captions, _ParseJsonLines(self._images)))


# Dispatch ------------------------------------------------------------------

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
