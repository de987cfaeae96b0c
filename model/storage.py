"""Folders on remote file systems (gs://, ...) through Beam's FileSystems: the one client for remote I/O.

TensorFlow writes SavedModels through its own file system layer; img2txt has
it write and read locally, and copies folders to and from remote storage here
instead, so every remote path of the export and the pipelines goes through
one client (which the tests run against a GCS emulator). Training's
checkpoints and summaries are the exception: TensorFlow writes them itself
(``model.training``). Beam is imported only when a path is remote: the import
costs seconds.

Small files that several processes may race for (a lease) go through the
versioned calls at the end: ``create_if_absent``, ``read_versioned``,
``replace_if`` and ``delete_if``, atomic on local files and on ``gs://``,
where Beam's FileSystems has no preconditions; they use the same
google-cloud-storage client as Beam's ``gs://`` file system.
"""
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import threading
import uuid

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


def create_if_absent(path, data):
    """Writes ``data`` to ``path`` only if no file is there: of writers racing for one path, exactly one wins.

    Local: the bytes go to a temporary file beside ``path``, hard-linked into
    place (an exclusive create that no reader sees half-written). ``gs://``:
    an upload with the precondition ``if_generation_match=0``.

    Returns:
      The new file's version, for ``replace_if`` and ``delete_if``; None when a file was already there.
    """
    if _is_gcs(path):
        from google.api_core.exceptions import PreconditionFailed
        blob = _gcs_blob(path)
        try:
            blob.upload_from_string(data, content_type='application/json', if_generation_match=0)
        except PreconditionFailed:
            return None
        return blob.generation
    _local_only(path)
    with _folder_lock(path):
        temporary = _temporary_beside(path, data)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return None
        finally:
            os.unlink(temporary)
    return _digest(data)


def read_versioned(path):
    """``(data, version)`` of the file at ``path``, or ``(None, None)`` when there is none."""
    if _is_gcs(path):
        from google.api_core.exceptions import NotFound, PreconditionFailed
        for _ in range(5):  # it may change between the metadata and the bytes: read both again
            blob = _gcs_blob(path)
            blob = blob.bucket.get_blob(blob.name)
            if blob is None:
                return None, None
            generation = blob.generation  # the download may reset it from its response headers
            try:
                return blob.download_as_bytes(if_generation_match=generation), generation
            except (NotFound, PreconditionFailed):
                continue
        raise OSError(f'{path} changed on every one of 5 reads')
    _local_only(path)
    with _folder_lock(path):
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except FileNotFoundError:
            return None, None
    return data, _digest(data)


def replace_if(path, data, version):
    """Replaces the file at ``path`` with ``data`` if it is still at ``version``; returns the new version, or None."""
    if _is_gcs(path):
        from google.api_core.exceptions import NotFound, PreconditionFailed
        blob = _gcs_blob(path)
        try:
            blob.upload_from_string(data, content_type='application/json', if_generation_match=version)
        except (NotFound, PreconditionFailed):
            return None
        return blob.generation
    _local_only(path)
    with _folder_lock(path):
        if _local_version(path) != version:
            return None
        os.replace(_temporary_beside(path, data), path)
    return _digest(data)


def delete_if(path, version):
    """Deletes the file at ``path`` if it is still at ``version``; returns whether it did."""
    if _is_gcs(path):
        from google.api_core.exceptions import NotFound, PreconditionFailed
        try:
            _gcs_blob(path).delete(if_generation_match=version)
        except (NotFound, PreconditionFailed):
            return False
        return True
    _local_only(path)
    with _folder_lock(path):
        if _local_version(path) != version:
            return False
        os.unlink(path)
    return True


def _is_gcs(path):
    return path.startswith('gs://')


def _local_only(path):
    if is_remote(path):
        raise ValueError(f'{path}: atomic create and replace work on local files and gs:// only')


@contextlib.contextmanager
def _folder_lock(path):
    """An exclusive lock (flock) on the folder of ``path``, between processes and threads alike; creates the folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _temporary_beside(path, data):
    temporary = f'{path}.{uuid.uuid4().hex}.tmp'
    with open(temporary, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return temporary


def _digest(data):
    return hashlib.sha256(data).hexdigest()


def _local_version(path):
    try:
        with open(path, 'rb') as f:
            return _digest(f.read())
    except FileNotFoundError:
        return None


_gcs_client_lock = threading.Lock()
_gcs_clients = {}


def _gcs_blob(path):
    """The google-cloud-storage blob of a gs:// path, from the client Beam's gs:// file system would create."""
    from apache_beam.io.gcp import gcsio
    from apache_beam.options.pipeline_options import PipelineOptions
    bucket, name = gcsio.parse_gcs_path(path)
    with _gcs_client_lock:
        # One client per process and emulator: clients are not fork-safe, and tests point at emulators.
        key = (os.getpid(), os.environ.get('STORAGE_EMULATOR_HOST'))
        if key not in _gcs_clients:
            _gcs_clients[key] = gcsio.create_storage_client(PipelineOptions([]))
        client = _gcs_clients[key]
    return client.bucket(bucket).blob(name)
