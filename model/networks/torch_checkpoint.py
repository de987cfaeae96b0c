"""Read legacy PyTorch state-dict files without torch and without running pickled code.

A legacy (pre-1.6) ``torch.save`` file is a stream of five pickles followed by
raw storage data:

1. the magic number, 2. the protocol version, 3. system info (endianness,
type sizes), 4. the object itself, whose tensors point at storages through
persistent ids, 5. the list of storage keys; then, for each key in that order,
an int64 little-endian element count and the storage's raw bytes.

Pickle can call any importable callable, so a checkpoint from elsewhere must
not be read with ``pickle.load``. The unpickler here resolves only the handful
of globals a state dict needs and builds tensors as numpy arrays itself.
"""
import collections
import pickle
import struct

import numpy as np

# Every legacy torch.save stream starts with a pickle of this number.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_ZIP_MAGIC = b'PK\x03\x04'

_STORAGE_DTYPES = {
    'DoubleStorage': 'f8',
    'FloatStorage': 'f4',
    'HalfStorage': 'f2',
    'LongStorage': 'i8',
    'IntStorage': 'i4',
    'ShortStorage': 'i2',
    'CharStorage': 'i1',
    'ByteStorage': 'u1',
    'BoolStorage': '?',
}


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co.: only its element type matters."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage named in the pickle; its bytes come after the last pickle."""

    def __init__(self, dtype, size):
        self.dtype = dtype
        self.size = size
        self.data = None


class _StorageView:
    """A legacy storage view: ``size`` elements from ``offset`` of a root storage."""

    def __init__(self, root, offset, size):
        self.root = root
        self.offset = offset
        self.size = size


class _TensorRef:
    """A tensor whose storage has not been read yet."""

    def __init__(self, storage, offset, shape, stride):
        self.storage = storage
        self.offset = offset
        self.shape = tuple(shape)
        self.stride = tuple(stride)


def _is_int_tuple(value):
    return isinstance(value, tuple) and all(isinstance(v, int) for v in value)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    # _rebuild_tensor_v2 adds requires_grad, backward hooks and metadata,
    # none of which matter for weights.
    if not (isinstance(storage, (_Storage, _StorageView)) and isinstance(storage_offset, int)
            and _is_int_tuple(size) and _is_int_tuple(stride) and len(size) == len(stride)):
        raise pickle.UnpicklingError('malformed tensor record')
    return _TensorRef(storage, storage_offset, size, stride)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint names a global that a state dict does not need."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a state dict is made of."""

    def __init__(self, file, storages=None):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'):
            return collections.OrderedDict
        if module == 'torch._utils' and name in ('_rebuild_tensor', '_rebuild_tensor_v2'):
            return _rebuild_tensor
        # GPU checkpoints name torch.cuda.*Storage; the bytes are the same.
        if module in ('torch', 'torch.cuda') and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f'refusing to load global {module}.{name}: a PyTorch state dict needs only '
            'OrderedDict, torch._utils._rebuild_tensor[_v2] and torch.*Storage')

    def persistent_load(self, pid):
        if self._storages is None:
            raise pickle.UnpicklingError('persistent id outside the object pickle')
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == 'storage'
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f'unsupported persistent id {pid!r}')
        _, storage_type, key, _location, size, view_metadata = pid
        root = self._storages.get(key)
        if root is None:
            root = self._storages[key] = _Storage(storage_type.dtype, size)
        if view_metadata is None:
            return root
        if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3
                and _is_int_tuple(view_metadata[1:])):
            raise pickle.UnpicklingError(f'malformed storage view {view_metadata!r}')
        _view_key, offset, view_size = view_metadata
        return _StorageView(root, offset, view_size)


def _unpickle(f, storages=None):
    return _RestrictedUnpickler(f, storages).load()


def _read_storage(f, storage, byteorder, path):
    header = f.read(8)
    count = struct.unpack('<q', header)[0] if len(header) == 8 else None
    if count != storage.size:
        raise ValueError(f'{path}: truncated or corrupt storage data '
                         f'(expected {storage.size} elements, header says {count})')
    dtype = storage.dtype.newbyteorder(byteorder)
    raw = f.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f'{path}: truncated storage data')
    storage.data = np.frombuffer(raw, dtype=dtype)


def _materialise(name, ref, path):
    """Copy a tensor out of its storage, honouring offset and strides."""
    storage, offset = ref.storage, ref.offset
    if isinstance(storage, _StorageView):
        flat = storage.root.data[storage.offset:storage.offset + storage.size]
    else:
        flat = storage.data
    if any(s < 0 for s in ref.stride) or offset < 0:
        raise ValueError(f'{path}: tensor {name!r} has a negative offset or stride')
    if 0 in ref.shape:
        return np.zeros(ref.shape, dtype=flat.dtype.newbyteorder('='))
    # as_strided trusts its arguments; an out-of-range stride would read
    # arbitrary memory, so bound the last element first.
    last = offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if last >= flat.size:
        raise ValueError(f'{path}: tensor {name!r} reaches past its storage '
                         f'(element {last} of {flat.size})')
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=ref.shape, strides=[s * item for s in ref.stride], writeable=False)
    return np.array(view, dtype=flat.dtype.newbyteorder('='), order='C')


def _read_pickles(f, path):
    """Read the five pickles: returns (object, storages by key, byte order, storage key order)."""
    if _unpickle(f) != _LEGACY_MAGIC:
        raise ValueError(f'{path}: not a legacy PyTorch checkpoint (bad magic number)')
    _unpickle(f)  # protocol version: 1001 for every legacy file
    sys_info = _unpickle(f)
    if not isinstance(sys_info, dict):
        raise ValueError(f'{path}: corrupt system-info record')
    byteorder = '<' if sys_info.get('little_endian', True) else '>'
    storages = {}
    obj = _unpickle(f, storages)
    keys = _unpickle(f)
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise ValueError(f'{path}: storage key list does not match the storages used')
    return obj, storages, byteorder, keys


def load_state_dict(path):
    """Read a legacy-format PyTorch state dict into numpy arrays.

    Args:
      path: a file written by ``torch.save(model.state_dict(), path)`` with
        PyTorch older than 1.6 (or ``_use_new_zipfile_serialization=False``).

    Returns:
      ``dict[str, np.ndarray]`` in file order, arrays in native byte order.

    Raises:
      UnsafeCheckpointError: (a ``pickle.UnpicklingError``) the file names a
        global other than those a state dict needs; nothing named in it is
        imported or called.
      ValueError: the file is not a legacy PyTorch checkpoint, is a
        zip-format one, is truncated, or holds something besides tensors.
    """
    path = str(path)
    with open(path, 'rb') as f:
        if f.read(4) == _ZIP_MAGIC:
            raise ValueError(f'{path}: zip-format (PyTorch >= 1.6) checkpoint; only the legacy '
                             'format is supported: re-save it with '
                             'torch.save(..., _use_new_zipfile_serialization=False)')
        f.seek(0)
        try:
            obj, storages, byteorder, keys = _read_pickles(f, path)
        except UnsafeCheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, TypeError) as e:
            raise ValueError(f'{path}: not a legacy PyTorch checkpoint or corrupt ({e})') from e
        for key in keys:
            _read_storage(f, storages[key], byteorder, path)
    if not isinstance(obj, dict):
        raise ValueError(f'{path}: expected a state dict, found {type(obj).__name__}')
    out = {}
    for name, ref in obj.items():
        if not isinstance(ref, _TensorRef):
            raise ValueError(f'{path}: entry {name!r} is {type(ref).__name__}, not a tensor')
        out[name] = _materialise(name, ref, path)
    return out
