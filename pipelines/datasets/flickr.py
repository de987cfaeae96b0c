"""Flickr8k and Flickr30k token files ('NAME.jpg#N<TAB>caption'), with split lists: ReadFlickr8k, ReadFlickr30k."""
import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from img2txt.pipelines.datasets.common import (
    ERRORS, _assemble, _BadRecord, _Caption, _check_exists, _check_split, _error, _name, _parse, _Placement,
    _read_lines, _shorten)


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
