"""PASCAL 1k sentences, one text file per image: ReadPascal."""
import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from img2txt.pipelines.datasets.common import ERRORS, _assemble, _Caption, _check_split, _Placement, _read_lines


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
