"""Karpathy split JSON (dataset_coco.json, dataset_flickr8k.json, ...): ReadKarpathy."""
import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from img2txt.pipelines.datasets.common import (
    RESTVAL, SPLITS, _assemble, _BadRecord, _Caption, _check_exists, _coco_id, _error, _fields, _name, _parse,
    _Placement, _read_json, _shorten)


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
