"""Progress of a local pipeline run (caption, preprocess), shown while it works: done/total, images/s, time left.

The steps count into small files in a local folder (``Total`` once the
files to caption are known, ``Tick`` for each image that ends captioned or
failed), one file per step instance, so in-process and multi-process runners
count alike. A thread of the driver (``Reporter``) adds them up and prints,
every ``every_seconds``: a bar redrawn in place on a terminal, plain lines in
a log.
"""
import os
import stat
import sys
import threading
import time
import uuid

import apache_beam as beam

# Seconds between two progress lines in a log; a terminal's bar is redrawn every second.
EVERY_SECONDS = 10.0
_TERMINAL_EVERY_SECONDS = 1.0
_TOTAL = 'total'
_BAR_WIDTH = 24
# A step rewrites its count at most this often.
_FLUSH_SECONDS = 0.5


def _write(path, text):
    temporary = f'{path}.{uuid.uuid4().hex}.tmp'
    with open(temporary, 'w') as f:
        f.write(text)
    os.replace(temporary, path)


class Total(beam.DoFn):
    """The number of files to caption (one element) → the folder's ``total``; passes the number on."""

    def __init__(self, folder):
        self._folder = folder

    def process(self, count):
        _write(os.path.join(self._folder, _TOTAL), str(count))
        return [count]


class Tick(beam.DoFn):
    """Counts the images that reach it (a sink): into a file of this step instance's own, every half second."""

    def __init__(self, folder):
        self._folder = folder

    def setup(self):
        self._path = os.path.join(self._folder, f'done-{os.getpid()}-{uuid.uuid4().hex}')
        self._done = 0
        self._flushed = 0.0

    def process(self, element):
        self._done += 1
        if time.monotonic() - self._flushed >= _FLUSH_SECONDS:
            self._flush()
        return []

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        _write(self._path, str(self._done))
        self._flushed = time.monotonic()


def _is_terminal(stream):
    """Whether ``stream`` shows on a terminal.

    ``img2txt``'s CLI sends stderr through a pipe that filters TensorFlow's
    C++ logs out (``jobs.cli``); behind that pipe, stdout tells whether the
    user watches a terminal.
    """
    if stream.isatty():
        return True
    try:
        piped = stream is sys.stderr and stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # a stream without a file descriptor (captured)
        return False
    return piped and sys.stdout.isatty()


def _duration(seconds):
    seconds = round(seconds)
    if seconds < 90:
        return f'{seconds} s'
    if seconds < 90 * 60:
        return f'{seconds // 60} min {seconds % 60:02d} s'
    return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'


class Reporter:
    """Prints the progress counted in ``folder`` on ``stream`` from a thread, until ``stop``; ``job`` starts each line."""

    def __init__(self, folder, every_seconds=EVERY_SECONDS, stream=None, job='caption'):
        self._folder = folder
        self._job = job
        self._stream = stream or sys.stderr
        self._terminal = _is_terminal(self._stream)
        self._every = min(every_seconds, _TERMINAL_EVERY_SECONDS) if self._terminal else every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name='img2txt-progress', daemon=True)
        self._drawn = False
        self._first = None  # (time, done) when images were first done

    def __enter__(self):
        self._begun = time.time()
        self._thread.start()
        return self

    def __exit__(self, exc_type, *_):
        self._stop.set()
        self._thread.join()
        if self._drawn and self._terminal:
            self._stream.write('\n')
        total, done, started = self._counts()
        if exc_type is None and total is not None:
            seconds = time.time() - started
            self._stream.write(f'{self._job}: {done}/{total} images done in {_duration(seconds)}, '
                               f'{done / max(seconds, 1e-9):.1f} images/s\n')
        self._stream.flush()

    def _counts(self):
        """(total or None, done, when the work started: when the total was known)."""
        total, done, started = None, 0, self._begun
        for name in os.listdir(self._folder):
            if name.endswith('.tmp'):
                continue
            path = os.path.join(self._folder, name)
            try:
                with open(path) as f:
                    value = int(f.read())
                if name == _TOTAL:
                    started = os.path.getmtime(path)
            except (OSError, ValueError):  # replaced while read: counted next time
                continue
            if name == _TOTAL:
                total = value
            else:
                done += value
        return total, done, started

    def line(self, total, done, seconds, pace=None):
        """The progress line of ``done`` of ``total`` images after ``seconds`` of work.

        ``pace``, images/s since the first image was done (the model loaded), estimates the time left.
        """
        rate = done / seconds if seconds > 0 else 0.0
        left = f'about {_duration((total - done) / pace)} left' if pace else 'time left not known yet'
        text = f'{done}/{total} images, {rate:.1f} images/s, {left}'
        if self._terminal:
            filled = _BAR_WIDTH * done // max(total, 1)
            return f'{self._job}: [{"#" * filled}{"." * (_BAR_WIDTH - filled)}] {text}'
        return f'{self._job}: {text}'

    def _loop(self):
        while not self._stop.wait(self._every):
            total, done, started = self._counts()
            if total is None:
                continue  # still matching files
            now, done = time.time(), min(done, total)
            if self._first is None and done:
                self._first = (now, done)
            pace = None
            if self._first and done > self._first[1]:
                pace = (done - self._first[1]) / (now - self._first[0])
            text = self.line(total, done, now - started, pace)
            if self._terminal:
                self._stream.write(f'\r{text}\x1b[K')
            else:
                self._stream.write(text + '\n')
            self._stream.flush()
            self._drawn = True
