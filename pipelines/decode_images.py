"""``DecodeImages``: image files → the encoder's input pixels in a Beam pipeline, failures as error records.

The decoding itself is ``model.serving.image_decoding`` (Pillow); this is its Beam
step, which reads the files, decodes them on a thread pool and routes each
failure to an error record naming the file (``schemas.errors``).
"""
import collections
import concurrent.futures
import hashlib
import os

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from img2txt.model import storage
from img2txt.model.serving.image_decoding import DecodedImage, ImageDecodeError, decode_image
from img2txt.model.input_spec import DEFAULT_MAX_PIXELS, InputSpec
from img2txt.schemas import errors


class DecodeImages(beam.PTransform):
    """(key, path) → (key, ``DecodedImage``), with failures as (key, error record) on the ``errors`` output.

    The main output carries each image's crop, size and SHA-256; read failures
    (a missing or unreadable file) are stage ``read`` and bad images stage
    ``decode``, each record naming the path (``schemas.errors``). Counters
    ``images/decoded``, ``images/read_failed`` and ``images/decode_failed``
    add up to the input count.

    Files are read and decoded on a small thread pool, a window of images
    ahead: reads wait on storage and Pillow releases the GIL while decoding,
    so both overlap with the encoder that Beam fuses into the same stage.
    """

    ERRORS = 'errors'

    def __init__(self, spec, max_pixels=DEFAULT_MAX_PIXELS, threads=None, window=64):
        super().__init__()
        if not isinstance(spec, InputSpec):
            raise TypeError(f'spec must be an InputSpec, got {type(spec).__name__}')
        self._fn = _DecodeFn(spec, max_pixels, threads or min(8, os.cpu_count() or 1), window)

    def expand(self, keyed_paths):
        return keyed_paths | 'ReadAndDecode' >> beam.ParDo(self._fn).with_outputs(self.ERRORS, main='images')


class _DecodeFn(beam.DoFn):
    def __init__(self, spec, max_pixels, threads, window):
        self._spec = spec
        self._max_pixels = max_pixels
        self._threads = threads
        self._window = window
        self._decoded = beam.metrics.Metrics.counter('images', 'decoded')
        self._read_failed = beam.metrics.Metrics.counter('images', 'read_failed')
        self._decode_failed = beam.metrics.Metrics.counter('images', 'decode_failed')

    def setup(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(self._threads, thread_name_prefix='img2txt-decode')

    def start_bundle(self):
        self._pending = collections.deque()

    def process(self, element, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        self._pending.append((self._pool.submit(self._load, *element), timestamp, window))
        while self._pending and (len(self._pending) > self._window or self._pending[0][0].done()):
            yield from self._outputs(self._pending.popleft()[0].result())

    def finish_bundle(self):
        while self._pending:
            future, timestamp, window = self._pending.popleft()
            for output in self._outputs(future.result()):
                if isinstance(output, beam.pvalue.TaggedOutput):
                    yield beam.pvalue.TaggedOutput(output.tag, WindowedValue(output.value, timestamp, [window]))
                else:
                    yield WindowedValue(output, timestamp, [window])

    def teardown(self):
        self._pool.shutdown(cancel_futures=True)

    def _load(self, key, path):
        """Runs on the pool: (key, DecodedImage) or (key, error record). Never raises."""
        try:
            data = storage.read_bytes(path)
        except Exception as e:  # Missing file, permissions, storage errors: all per-element.
            return key, errors.from_exception('read', path, e)
        try:
            return key, decode_image(data, self._spec, self._max_pixels)._replace(
                sha256=hashlib.sha256(data).hexdigest())
        except ImageDecodeError as e:
            return key, errors.from_exception('decode', path, e)

    def _outputs(self, result):
        # Counted here, on the bundle's thread: Beam's metrics containers are per thread.
        if isinstance(result[1], DecodedImage):
            self._decoded.inc()
            yield result
        else:
            (self._read_failed if result[1][errors.STAGE] == 'read' else self._decode_failed).inc()
            yield beam.pvalue.TaggedOutput(DecodeImages.ERRORS, result)
