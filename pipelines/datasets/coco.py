"""COCO captions JSON (captions_train2014.json, ...): ReadCoco."""
import re

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from img2txt.pipelines.datasets.common import (
    SPLITS, _assemble, _BadRecord, _Caption, _check_exists, _check_split, _coco_id, _error, _fields, _name, _parse,
    _Placement, _read_json)

# "train", "val" or "test" not preceded by a letter: captions_train2014.json,
# captions_val2017.json, image_info_test2014.json; not "restval".
_SPLIT_IN_NAME = re.compile(r'(?<![a-z])(train|val|test)', re.IGNORECASE)


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
