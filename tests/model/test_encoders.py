"""Encoders with real ImageNet weights on real photos, offline."""
import os

import keras
import numpy as np
import pytest
import skimage.data
from PIL import Image
from sklearn.datasets import load_sample_image

from img2txt.model.networks import encoders

ESPRESSO = 967
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
PALACE, MONASTERY, BELL_COTE, CASTLE, CHURCH, MOSQUE, STUPA = 698, 663, 442, 483, 497, 668, 832
DAISY = 985
# Every EfficientNet-Lite encoder and the (crop, short side) of the reference evaluation.
LITE_INPUTS = {'efficientnet_lite0': (224, 256), 'efficientnet_lite1': (240, 272), 'efficientnet_lite2': (260, 292)}
# The (H, W, C) of every encoder's last feature map at its own input size: stride 32, "same" padding rounds up.
SPATIAL_SHAPES = {
    'efficientnet_lite0': (7, 7, 1280), 'efficientnet_lite1': (8, 8, 1280), 'efficientnet_lite2': (9, 9, 1280),
    'efficientnet_b0': (7, 7, 1280), 'inception_v3': (8, 8, 2048), 'mobilenet_v2': (7, 7, 1280),
    'resnet50': (7, 7, 2048), 'vgg16': (7, 7, 512),
}
PHOTOS = {
    'coffee': skimage.data.coffee,
    'chelsea': skimage.data.chelsea,
    'china': lambda: load_sample_image('china.jpg'),
    'flower': lambda: load_sample_image('flower.jpg'),
}


def _crop(image, spec):
    """Short side to spec.resize (bicubic), centre crop spec.size: the encoder's input."""
    image = Image.fromarray(image)
    scale = spec.resize / min(image.size)
    image = image.resize([round(side * scale) for side in image.size], Image.BICUBIC)
    left, top = (image.width - spec.size) // 2, (image.height - spec.size) // 2
    return np.asarray(image.crop((left, top, left + spec.size, top + spec.size)))


def _top5(encoder, photos):
    """Five most likely classes per photo, best first; prints the best label and its probability."""
    logits = encoder.logits(np.stack(list(photos.values())))
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = encoders.imagenet_labels()
    result = {name: list(np.argsort(-row)[:5]) for name, row in zip(photos, logits)}
    for (name, classes), row in zip(result.items(), probabilities):
        print(encoder.name, name, [labels[i][1] for i in classes], f'top-1 p={row[classes[0]]:.3f}')
    return result


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp('img2txt_cache')
        patch.setenv('IMG2TXT_CACHE', str(path))
        yield path


@pytest.fixture(scope='module')
def lite0(cache_dir):
    """Loaded with an empty cache: converts the PyTorch file."""
    return encoders.load()


@pytest.fixture(scope='module', params=sorted(LITE_INPUTS))
def lite(request, cache_dir):
    """Each EfficientNet-Lite with its packaged ImageNet weights (the default one is ``lite0``)."""
    if request.param == encoders.DEFAULT:
        return request.getfixturevalue('lite0')
    return encoders.load(request.param)


def _crops(spec):
    return {name: _crop(image(), spec) for name, image in PHOTOS.items()}


@pytest.fixture(scope='module')
def photos(lite0):
    return _crops(lite0.input_spec)


@pytest.fixture(scope='module')
def top5(lite):
    return _top5(lite, _crops(lite.input_spec))


def test_lite_describes_itself(lite, cache_dir):
    assert lite.name in encoders.names()
    assert (lite.input_spec.size, lite.input_spec.resize, lite.input_spec.resample) == (
        *LITE_INPUTS[lite.name], 'bicubic')
    assert lite.feature_dim == 1280 and lite.has_head
    assert lite.id.startswith(f'{lite.name}@') and len(lite.id.split('@')[1]) == 12
    assert (cache_dir / f'{lite.id}.npz').is_file()


def test_coffee_is_espresso(top5):
    assert top5['coffee'][0] == ESPRESSO


def test_chelsea_is_a_cat(top5):
    assert top5['chelsea'][0] in CATS
    assert sum(c in CATS for c in top5['chelsea']) >= 3


def test_china_is_a_palace_or_temple(top5):
    assert top5['china'][0] in (PALACE, MONASTERY, BELL_COTE, CASTLE, CHURCH, MOSQUE, STUPA)
    assert PALACE in top5['china']


def test_flower_is_a_daisy(lite0, photos):
    """Lite0 only: Lite1 and Lite2 see honeycomb in this close-up of a flower's centre."""
    assert _top5(lite0, photos)['flower'][0] == DAISY


def test_features_are_pooled_and_batch_independent(lite0, photos):
    batch = np.stack(list(photos.values()))
    features = lite0.features(batch)
    assert features.shape == (4, 1280) and features.dtype == np.float32
    # ReLU6 then average pooling: every feature lies in [0, 6].
    assert features.min() >= 0 and features.max() <= 6
    np.testing.assert_array_equal(lite0.features(batch.astype(np.float32)), features)


def test_a_feature_does_not_depend_on_the_batch_it_rides_in(photos):
    """Bit for bit: runners batch differently, and preprocess promises byte-identical shards on any runner."""
    encoder = encoders.load(batch_size=8)
    coffee = photos['coffee']
    rng = np.random.default_rng(1)
    others = rng.integers(0, 256, (20, 224, 224, 3), dtype=np.uint8)
    alone = encoder.features(coffee[None])[0]
    for count, position in ((3, 2), (8, 5), (13, 9), (21, 20)):
        batch = np.concatenate([others[:position], coffee[None], others[position:count - 1]])
        np.testing.assert_array_equal(encoder.features(batch)[position], alone)
    # By construction: whatever the batch sizes asked for, the network ran in one shape only.
    assert encoder._features.experimental_get_tracing_count() == 1


def test_features_are_the_mean_of_the_spatial_map(lite, cache_dir):
    batch = np.stack(list(_crops(lite.input_spec).values()))
    features, spatial = lite.features_and_spatial(batch)
    assert lite.spatial_shape == SPATIAL_SHAPES[lite.name]
    assert spatial.shape == (4, *lite.spatial_shape) and spatial.dtype == np.float32
    assert lite.describe()['spatial_shape'] == list(lite.spatial_shape)
    np.testing.assert_allclose(spatial.mean(axis=(1, 2)), features, rtol=1e-5, atol=1e-6)
    # The pass that also returns the map gives the very vectors ``features`` gives: spatial preprocess runs
    # store the same pooled features as those without.
    np.testing.assert_array_equal(features, lite.features(batch))
    np.testing.assert_array_equal(lite.spatial_features(batch), spatial)


def test_a_spatial_map_does_not_depend_on_the_batch_it_rides_in(photos):
    encoder = encoders.load(batch_size=8)
    coffee = photos['coffee']
    others = np.random.default_rng(2).integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
    alone = encoder.spatial_features(coffee[None])[0]
    for count, position in ((3, 1), (13, 9)):
        batch = np.concatenate([others[:position], coffee[None], others[position:count - 1]])
        np.testing.assert_array_equal(encoder.spatial_features(batch)[position], alone)
    assert encoder._features_and_spatial.experimental_get_tracing_count() == 1


@pytest.mark.parametrize('name', encoders.names())
def test_every_encoder_has_a_spatial_map(name):
    """Random weights (nothing to download), one image per call: the shape and the pooling are the architecture's."""
    assert set(encoders.names()) == set(SPATIAL_SHAPES)
    encoder = encoders.load(name, weights='random', batch_size=1)
    assert encoder.spatial_shape == SPATIAL_SHAPES[name]
    assert encoder.spatial_shape[-1] == encoder.feature_dim
    size = encoder.input_spec.size
    pixels = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    features, spatial = encoder.features_and_spatial(pixels)
    assert spatial.shape == (1, *SPATIAL_SHAPES[name])
    np.testing.assert_allclose(spatial.mean(axis=(1, 2)), features, rtol=1e-4, atol=1e-5)


# The first block at 1/16 of the input, and its depthwise output's shape, per Lite size (depth scaling
# adds blocks before it in Lite1 and Lite2; width scaling widens Lite2's).
STRIDE16 = {'efficientnet_lite0': (5, (14, 14, 240)), 'efficientnet_lite1': (7, (15, 15, 240)),
            'efficientnet_lite2': (7, (17, 17, 288))}


def test_the_stride16_map_is_the_first_sixteenth_resolution_blocks_depthwise_output(lite):
    block, shape = STRIDE16[lite.name]
    encoder = encoders.load(lite.name, spatial_layer='stride16')
    assert (encoder.spatial_layer, encoder.spatial_shape) == ('stride16', shape)
    assert encoder.describe()['spatial_layer'] == 'stride16' and encoder.describe()['spatial_shape'] == list(shape)
    batch = np.stack(list(_crops(lite.input_spec).values()))
    features, spatial = encoder.features_and_spatial(batch)
    layer = keras.Model(encoder.model.input, encoder.model.get_layer(f'blocks_{block}_depthwise_conv_relu6').output)
    np.testing.assert_allclose(spatial, layer(batch.astype(np.float32)).numpy(), rtol=1e-5, atol=1e-5)
    # The pooled vector is the head's whatever map is chosen: Show and Tell reads the same records.
    np.testing.assert_array_equal(features, lite.features(batch))
    assert lite.spatial_layer == 'head' and lite.describe()['spatial_layer'] == 'head'


def test_an_encoder_refuses_a_spatial_layer_it_lacks():
    with pytest.raises(ValueError, match="^unknown spatial layer 'stride16' for encoder resnet50; it offers: head$"):
        encoders.load('resnet50', weights='random', spatial_layer='stride16')
    with pytest.raises(ValueError, match="^unknown spatial layer 'middle' .* it offers: head, stride16$"):
        encoders.load(spatial_layer='middle')


def test_wrong_image_shape_is_a_clear_error(lite0):
    with pytest.raises(ValueError, match=r'\[B, 224, 224, 3\]'):
        lite0.features(np.zeros((224, 224, 3), np.uint8))


def test_cached_load_gives_identical_features(lite0, photos, cache_dir):
    # Other encoders may share the folder; atomic writes leave no temporary files behind.
    cached = [p.name for p in cache_dir.iterdir()]
    assert f'{lite0.id}.npz' in cached and all(name.endswith('.npz') for name in cached)
    batch = np.stack(list(photos.values()))
    again = encoders.load()
    assert again.id == lite0.id
    np.testing.assert_array_equal(again.features(batch), lite0.features(batch))


def test_corrupt_cache_is_rebuilt(lite0, photos, cache_dir):
    path = cache_dir / f'{lite0.id}.npz'
    good = path.read_bytes()
    path.write_bytes(good[:len(good) // 2])
    batch = np.stack(list(photos.values()))
    rebuilt = encoders.load()
    np.testing.assert_array_equal(rebuilt.features(batch), lite0.features(batch))
    assert path.read_bytes() == good


def test_imagenet_labels():
    labels = encoders.imagenet_labels()
    assert len(labels) == 1000
    assert labels[ESPRESSO] == ('n07920052', 'espresso')
    assert labels[0] == ('n01440764', 'tench')


def test_random_inception_v3():
    encoder = encoders.load('inception_v3', weights=None)
    assert encoder.feature_dim == 2048
    assert encoder.input_spec.size == 299 and encoder.input_spec.resize == 342
    assert encoder.id == 'inception_v3@random-seed0' and not encoder.has_head
    features = encoder.features(np.full((1, 299, 299, 3), 128, np.uint8))
    assert features.shape == (1, 2048) and np.isfinite(features).all()
    with pytest.raises(ValueError, match='no classifier head'):
        encoder.logits(np.zeros((1, 299, 299, 3), np.uint8))


# Keras' own save_weights trips numpy 2's __array__(copy=...) deprecation.
@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_keras_application_from_local_file_matches_keras(tmp_path):
    """Our pixel scaling equals keras' preprocess_input, and a file with a classifier gives logits."""
    keras.utils.set_random_seed(1)
    reference = keras.applications.MobileNetV2(weights=None, classifier_activation=None)
    path = str(tmp_path / 'mobilenet_v2.weights.h5')
    reference.save_weights(path)
    encoder = encoders.load('mobilenet_v2', weights=path)
    assert encoder.has_head and encoder.feature_dim == 1280
    pixels = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3)).astype(np.float32)
    expected = reference(keras.applications.mobilenet_v2.preprocess_input(pixels.copy()), training=False)
    np.testing.assert_allclose(encoder.logits(pixels), np.asarray(expected), atol=1e-4)


def test_imagenet_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv('KERAS_HOME', str(tmp_path))
    with pytest.raises(ValueError, match='not in the Keras cache'):
        encoders.load('vgg16', weights='imagenet')
    assert not os.listdir(tmp_path)


def test_unknown_encoder_lists_known_ones():
    with pytest.raises(ValueError, match='known encoders: .*efficientnet_lite0.*inception_v3'):
        encoders.load('alexnet')
    assert {*LITE_INPUTS, 'inception_v3'} <= set(encoders.names())
