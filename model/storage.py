"""Folders between local disk and remote file systems (gs://, ...), through Beam's FileSystems.

TensorFlow writes SavedModels through its own file system layer; img2txt has
it write locally and copies the folder with Beam's ``FileSystems`` instead, so
every remote path goes through one client (which the tests run against a GCS
emulator). Beam is imported only when a path is remote: the import costs seconds.
"""
import os
import re
import shutil

_SCHEME = re.compile(r'^[a-zA-Z][-a-zA-Z0-9+.]*://')


def is_remote(path):
    """Whether ``path`` names a file system other than the local one (Beam's rule: a ``scheme://`` prefix)."""
    return bool(_SCHEME.match(path))


def upload_tree(local_dir, destination, last=None):
    """Copies every file under ``local_dir`` to ``destination`` (any Beam file system), keeping relative paths.

    A file named ``last`` is copied after all others, so a reader that finds
    it finds the rest too.
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    files = sorted((os.path.relpath(os.path.join(root, name), local_dir)
                    for root, _, names in os.walk(local_dir) for name in names),
                   key=lambda path: os.path.basename(path) == last)
    for path in files:
        with open(os.path.join(local_dir, path), 'rb') as source, \
                FileSystems.create(destination.rstrip('/') + '/' + path.replace(os.sep, '/'),
                                   compression_type=CompressionTypes.UNCOMPRESSED) as target:
            shutil.copyfileobj(source, target)
