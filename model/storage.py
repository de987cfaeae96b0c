"""Folders on remote file systems (gs://, ...) through Beam's FileSystems: the one client for remote I/O.

TensorFlow writes SavedModels through its own file system layer; img2txt has
it write and read locally, and copies folders to and from remote storage here
instead, so every remote path of the export and the pipelines goes through
one client (which the tests run against a GCS emulator). Training's
checkpoints and summaries are the exception: TensorFlow writes them itself
(``model.training``). Beam is imported only when a path is remote: the import
costs seconds.
"""
import os
import re
import shutil

_SCHEME = re.compile(r'^[a-zA-Z][-a-zA-Z0-9+.]*://')


def is_remote(path):
    """Whether ``path`` names a file system other than the local one (Beam's rule: a ``scheme://`` prefix)."""
    return bool(_SCHEME.match(path))


def list_files(directory):
    """Paths of the files under ``directory`` (local or remote), relative to it, '/'-separated; [] if it is absent."""
    if not is_remote(directory):
        return sorted(os.path.relpath(os.path.join(root, name), directory).replace(os.sep, '/')
                      for root, _, names in os.walk(directory) for name in names)
    from apache_beam.io.filesystems import FileSystems
    root = _as_folder(directory)
    return sorted(m.path[len(root):] for m in FileSystems.match([root + '**'])[0].metadata_list)


def is_empty(directory):
    """Whether ``directory`` (local or remote) holds no files; an absent one is empty.

    A local directory that holds only empty folders is not empty: a write
    there could not rename itself into place.
    """
    if is_remote(directory):
        return not list_files(directory)
    return not (os.path.isdir(directory) and os.listdir(directory))


def upload_tree(local_dir, destination, last=None):
    """Copies every file under ``local_dir`` to ``destination`` (any Beam file system), keeping relative paths.

    A file named ``last`` is copied after all others, so a reader that finds
    it finds the rest too.
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    files = sorted(list_files(local_dir), key=lambda path: path.rsplit('/', 1)[-1] == last)
    for path in files:
        with open(os.path.join(local_dir, *path.split('/')), 'rb') as source, \
                FileSystems.create(_as_folder(destination) + path,
                                   compression_type=CompressionTypes.UNCOMPRESSED) as target:
            shutil.copyfileobj(source, target)


def download_tree(source, local_dir):
    """Copies every file under ``source`` (any Beam file system) into ``local_dir``, keeping relative paths.

    Returns:
      The relative paths copied, as ``list_files`` gives them.
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    paths = list_files(source)
    for path in paths:
        target = os.path.join(local_dir, *path.split('/'))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with FileSystems.open(_as_folder(source) + path,
                              compression_type=CompressionTypes.UNCOMPRESSED) as f, open(target, 'wb') as out:
            shutil.copyfileobj(f, out)
    return paths


def _as_folder(path):
    return path.rstrip('/') + '/'


def read_bytes(path):
    """The bytes of one file, local or on any Beam file system (gs://...).

    Never decompresses by file extension: a file called ``x.gz`` is read as is.
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def write_bytes(path, data, mime_type='application/octet-stream'):
    """Writes one file, local or on any Beam file system, creating its folders; replaces an existing file."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.create(path, mime_type=mime_type, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)
