"""The encoder's RunInference handler on a real (random-weights) encoder."""
import numpy as np
import pytest

from img2txt.pipelines.model_handlers import EncoderModelHandler


@pytest.fixture(scope='module')
def pixels():
    return list(np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8))


@pytest.mark.parametrize('spatial_layer, shape', [('head', (7, 7, 1280)), ('stride16', (14, 14, 240))])
def test_spatial_maps_come_from_the_same_pass_as_the_features(pixels, spatial_layer, shape):
    handler = EncoderModelHandler('efficientnet_lite0', weights='random', batch_size=2, spatial_layer=spatial_layer)
    encoder = handler.load_model()
    assert encoder.spatial_layer == spatial_layer
    results = handler.run_inference(pixels, encoder)
    # One network pass per batch: the pooled-only function never ran.
    assert encoder._features.experimental_get_tracing_count() == 0
    features, spatial = encoder.features_and_spatial(np.stack(pixels))
    assert len(results) == 3
    for result, vector, grid in zip(results, features, spatial):
        assert result.example is None and result.model_id == encoder.id
        np.testing.assert_array_equal(result.inference[0], vector)
        np.testing.assert_array_equal(result.inference[1], grid)
        assert result.inference[1].shape == shape


def test_without_spatial_maps_only_features_are_computed(pixels):
    handler = EncoderModelHandler('efficientnet_lite0', weights='random', batch_size=2)
    encoder = handler.load_model()
    results = handler.run_inference(pixels, encoder)
    assert encoder._features_and_spatial.experimental_get_tracing_count() == 0
    assert all(result.inference[1] is None for result in results)
    np.testing.assert_array_equal(np.stack([r.inference[0] for r in results]), encoder.features(np.stack(pixels)))
