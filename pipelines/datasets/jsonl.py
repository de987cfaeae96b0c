"""JSON lines, one {"image", "captions", "split"[, "subset", "mentions"]} object a line: ReadJsonl."""
import json
import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from img2txt.pipelines.datasets.common import (
    SPLITS, _assemble, _BadRecord, _Caption, _check_exists, _error, _fields, _name, _parse, _Placement,
    _read_lines, _shorten)


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
    contains, e.g. ["red square", "blue circle"]). Other keys are ignored.
    Lines that are not JSON objects of this shape are error records named
    'FILE:LINE'; an image on several lines gets the captions of all of them.
    """

    def __init__(self, captions, images, validate=True):
        super().__init__()
        if validate:
            _check_exists(captions)
        self._captions = captions
        self._images = images

    def expand(self, pbegin):
        return _assemble(_parse(pbegin, 'ReadJsonLines', self._captions, _ParseJsonLines(self._images)))
