"""Folders to and from remote storage through Beam's FileSystems, against the GCS emulator."""
import os

import pytest
from apache_beam.io.filesystems import FileSystems

from img2txt.model import storage


@pytest.fixture
def tree(tmp_path):
    """A local folder of nested files, one with a name that Beam would decompress by default."""
    root = tmp_path / 'tree'
    files = {'top.txt': b'top\n', 'nested/deeper/data.bin': bytes(range(256)) * 300,
             'nested/looks-compressed.gz': b'not gzip data', 'saved_model.pb': b'written last'}
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root, files


def test_paths_are_remote_when_they_have_a_scheme():
    assert storage.is_remote('gs://bucket/dir') and storage.is_remote('s3://bucket')
    assert not storage.is_remote('/tmp/dir') and not storage.is_remote('relative/gs://dir')


def test_local_listing_and_emptiness(tree, tmp_path):
    root, files = tree
    assert storage.list_files(str(root)) == sorted(files)
    assert not storage.is_empty(str(root))
    assert storage.is_empty(str(tmp_path / 'absent')) and storage.list_files(str(tmp_path / 'absent')) == []
    (tmp_path / 'empty').mkdir()
    assert storage.is_empty(str(tmp_path / 'empty'))


def test_a_tree_goes_to_gcs_and_back_unchanged(tree, gcs, gcs_bucket, tmp_path):
    root, files = tree
    remote = f'gs://{gcs_bucket}/folder'
    assert storage.is_empty(remote) and storage.list_files(remote) == []
    storage.upload_tree(str(root), remote + '/')
    bucket = gcs.bucket(gcs_bucket)
    assert {blob.name: blob.download_as_bytes() for blob in bucket.list_blobs()} == {
        f'folder/{path}': data for path, data in files.items()}
    assert storage.list_files(remote) == sorted(files) and not storage.is_empty(remote)
    # A sibling whose name starts the same is another folder.
    assert storage.is_empty(f'gs://{gcs_bucket}/fold')

    copy = tmp_path / 'copy'
    assert storage.download_tree(remote, str(copy)) == sorted(files)
    assert {path: (copy / path).read_bytes() for path in files} == files
    assert storage.list_files(str(copy)) == sorted(files)


def test_the_last_file_is_written_after_all_others(tree, tmp_path, monkeypatch):
    root, files = tree
    created = []
    create = FileSystems.create

    def recording_create(path, *args, **kwargs):
        created.append(os.path.basename(path))
        return create(path, *args, **kwargs)

    monkeypatch.setattr(FileSystems, 'create', recording_create)
    # Beam's local file system stands in for a remote one here: only the order is under test.
    storage.upload_tree(str(root), str(tmp_path / 'out'), last='saved_model.pb')
    assert len(created) == len(files) and created[-1] == 'saved_model.pb'
    assert {path: (tmp_path / 'out' / path).read_bytes() for path in files} == files


@pytest.mark.parametrize('where', ['local', 'gcs'])
def test_versioned_writes_happen_only_where_the_file_is_as_expected(where, tmp_path, request):
    folder = str(tmp_path / 'new') if where == 'local' else f'gs://{request.getfixturevalue("gcs_bucket")}/new'
    path = f'{folder}/lease.json'
    assert storage.read_versioned(path) == (None, None)
    first = storage.create_if_absent(path, b'one')
    assert first is not None and storage.read_versioned(path) == (b'one', first)
    assert storage.create_if_absent(path, b'two') is None and storage.read_bytes(path) == b'one'
    second = storage.replace_if(path, b'two', first)
    assert second is not None and second != first and storage.read_bytes(path) == b'two'
    assert storage.replace_if(path, b'three', first) is None and storage.read_bytes(path) == b'two'
    assert not storage.delete_if(path, first) and storage.read_bytes(path) == b'two'
    assert storage.delete_if(path, second) and storage.read_versioned(path) == (None, None)
    assert storage.replace_if(path, b'four', second) is None and storage.read_versioned(path) == (None, None)
    if where == 'local':
        assert os.listdir(tmp_path / 'new') == []  # no temporary file left behind
