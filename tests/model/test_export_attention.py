"""The exported attention captioner: real encoder maps, a briefly trained Show-Attend-and-Tell, real photos."""
import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from captioner_data import CAPTIONS, image_features, photos_jpeg, train_captioner
from img2txt.model.networks import encoders
from img2txt.model.networks.attention import AttentionConfig
from img2txt.model.networks.show_and_tell import ShowAndTellConfig
from img2txt.model.serving import export, image_decoding
from img2txt.model.serving.beam_search import beam_search, texts
from img2txt.model.serving.captioner import Captioner
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import captioner
from test_export import caption, caption_without_img2txt

ATTENTION = decoder_names.ATTENTION


@pytest.fixture(scope='module')
def encoder():
    return encoders.load()


@pytest.fixture(scope='module')
def jpegs():
    return photos_jpeg()


@pytest.fixture(scope='module')
def trained(encoder, jpegs, training_seed):
    """(model, config, vocab): a small Show-Attend-and-Tell that has learnt CAPTIONS from the photos' feature maps."""
    return train_captioner(encoder, jpegs, seed=training_seed, decoder=ATTENTION)


@pytest.fixture(scope='module')
def maps(encoder, jpegs):
    """The photos' feature maps as the decoder reads them, [4, H x W, D]."""
    return image_features(encoder, [jpegs[name] for name in CAPTIONS], ATTENTION)


def test_fresh_tensorflow_process_captions_jpeg_bytes(exported, loaded, jpegs, trained, encoder, tmp_path):
    export_dir, model_id = exported
    _, config, vocab = trained
    images = [jpegs[name] for name in CAPTIONS]
    result = caption_without_img2txt(export_dir, images, tmp_path)

    assert not result['img2txt_imported']
    k, (height, width, _) = config.beam_size, encoder.spatial_shape
    assert result['shapes'] == {captioner.CAPTIONS: [4, k], captioner.LOG_PROBS: [4, k], captioner.LENGTHS: [4, k],
                                captioner.ATTENTION: [4, config.max_caption_length, height, width]}
    assert [row[0] for row in result['captions']] == list(CAPTIONS.values())
    in_process = caption(loaded, captioner.CAPTION_IMAGES, images)
    assert result['captions'] == in_process[captioner.CAPTIONS]
    np.testing.assert_allclose(result['log_probs'], in_process[captioner.LOG_PROBS], rtol=1e-5)
    np.testing.assert_allclose(result['attention'], in_process[captioner.ATTENTION], atol=1e-6)
    assert result['model_id'] == model_id and model_id.startswith('attention@')
    assert result['vocabulary'] == vocab


def test_config_names_the_decoder_and_its_config(exported, loaded, trained, encoder):
    export_dir, _ = exported
    _, config, _ = trained
    with open(os.path.join(export_dir, captioner.CONFIG_FILE), encoding='utf-8') as f:
        saved = json.load(f)
    assert saved[captioner.CONFIG_DECODER] == ATTENTION
    assert AttentionConfig.from_dict(saved[captioner.CONFIG_MODEL]) == config
    assert set(loaded.signatures) == {captioner.CAPTION_IMAGES, captioner.CAPTION_PIXELS,
                                      captioner.CAPTION_FEATURES, captioner.SERVING_DEFAULT}


def test_signatures_equal_the_in_process_beam_search_and_attention(loaded, trained, encoder, jpegs, maps):
    model, config, vocab = trained
    pixels = np.stack([image_decoding.decode(jpegs[name], encoder.input_spec) for name in CAPTIONS])
    from_pixels = caption(loaded, captioner.CAPTION_PIXELS, pixels)
    from_features = caption(loaded, captioner.CAPTION_FEATURES, maps)

    assert [row[0] for row in from_pixels[captioner.CAPTIONS]] == list(CAPTIONS.values())
    # The pixels path is the encoder's map, then the features path.
    for key in (captioner.CAPTIONS, captioner.LENGTHS):
        np.testing.assert_array_equal(from_pixels[key], from_features[key])
    for key in (captioner.LOG_PROBS, captioner.ATTENTION):
        np.testing.assert_allclose(from_pixels[key], from_features[key], rtol=1e-5, atol=1e-6)
    result = beam_search(model, maps, config.beam_size, config.max_caption_length)
    assert from_features[captioner.CAPTIONS] == export.captions_text(texts(result.token_ids, vocab))
    np.testing.assert_allclose(from_features[captioner.LOG_PROBS], result.log_probs, rtol=1e-5)
    height, width, _ = encoder.spatial_shape
    expected = model.attention_weights(maps, result.token_ids[:, 0]).numpy()
    np.testing.assert_allclose(from_features[captioner.ATTENTION],
                               expected.reshape(len(maps), config.max_caption_length, height, width), atol=1e-6)


def test_attention_rows_of_words_sum_to_one_and_padding_is_zero(loaded, jpegs, trained):
    config = trained[1]
    outputs = caption(loaded, captioner.CAPTION_IMAGES, [jpegs[name] for name in CAPTIONS])
    attention, lengths = outputs[captioner.ATTENTION], outputs[captioner.LENGTHS][:, 0]
    assert (lengths < config.max_caption_length).all(), 'the fixture should leave padded rows'
    for weights, length, text in zip(attention, lengths, CAPTIONS.values()):
        assert length == len(text.split())
        np.testing.assert_allclose(weights[:length].sum(axis=(1, 2)), 1.0, rtol=1e-5)
        assert (weights[:length] >= 0).all()
        np.testing.assert_array_equal(weights[length:], 0.0)
    # Not a uniform average: the model looks at some cells more than others.
    assert attention[:, 0].max() > 2.0 / attention[0, 0].size


def test_empty_batches(loaded, encoder, trained):
    config = trained[1]
    k, (height, width, depth), size = config.beam_size, encoder.spatial_shape, encoder.input_spec.size
    for signature, inputs in ((captioner.CAPTION_IMAGES, tf.zeros([0], tf.string)),
                              (captioner.CAPTION_PIXELS, tf.zeros([0, size, size, 3], tf.uint8)),
                              (captioner.CAPTION_FEATURES, tf.zeros([0, height * width, depth]))):
        outputs = loaded.signatures[signature](inputs)
        assert {key: value.shape.as_list() for key, value in outputs.items()} == {
            captioner.CAPTIONS: [0, k], captioner.LOG_PROBS: [0, k], captioner.LENGTHS: [0, k],
            captioner.ATTENTION: [0, config.max_caption_length, height, width]}


def test_captioner_captions_pixels_and_feature_maps(exported, encoder, jpegs, maps):
    wrapped = Captioner.load(exported[0], batch_size=3)  # two batches, the last padded
    assert wrapped.decoder == ATTENTION and wrapped.feature_shape == (maps.shape[1], encoder.feature_dim)
    pixels = np.stack([image_decoding.decode(jpegs[name], encoder.input_spec) for name in CAPTIONS])
    from_pixels = wrapped.caption(pixels)
    assert [candidates[0].caption for candidates in from_pixels] == list(CAPTIONS.values())
    from_features = wrapped.caption_features(maps)
    assert [[c.caption for c in row] for row in from_features] == [[c.caption for c in row] for row in from_pixels]
    with pytest.raises(ValueError, match=r'attention captioner takes features of shape \[N, 49, 1280\]'):
        wrapped.caption_features(encoder.features(pixels))


def test_captioner_attends_with_the_best_caption_and_its_words_weights(exported, loaded, encoder, jpegs, maps):
    wrapped = Captioner.load(exported[0], batch_size=3)  # two batches, the last padded
    pixels = np.stack([image_decoding.decode(jpegs[name], encoder.input_spec) for name in CAPTIONS])
    attended = wrapped.attend(pixels)
    assert [a.candidate for a in attended] == [best for [best] in wrapped.caption(pixels, top_k=1)]
    assert [a.candidate.caption for a in attended] == list(CAPTIONS.values())
    height, width, _ = encoder.spatial_shape
    signature = caption(loaded, captioner.CAPTION_PIXELS, pixels)[captioner.ATTENTION]
    for image, (candidate, weights) in enumerate(attended):
        assert weights.shape == (candidate.words, height, width) == (len(candidate.caption.split()), 7, 7)
        np.testing.assert_allclose(weights.sum(axis=(1, 2)), 1.0, rtol=1e-5)
        # This image's rows of the signature, not a neighbour's in the padded batch.
        np.testing.assert_allclose(weights, signature[image, :candidate.words], atol=1e-6)
    from_features = wrapped.attend_features(maps)
    assert [a.candidate.caption for a in from_features] == list(CAPTIONS.values())
    for a, b in zip(attended, from_features):
        np.testing.assert_allclose(a.weights, b.weights, atol=1e-5)
    with pytest.raises(ValueError, match=r'takes crops of shape \[N, 224, 224, 3\]'):
        wrapped.attend(pixels[:, :100])


def test_a_show_and_tell_captioner_has_no_attention(small_captioner, encoder, jpegs):
    wrapped = Captioner.load(small_captioner[0])
    pixels = image_decoding.decode(jpegs['coffee'], encoder.input_spec)[None]
    with pytest.raises(ValueError, match=r'show_and_tell captioner show_and_tell@\w+ has no attention output; '
                                         r'train with --decoder attention'):
        wrapped.attend(pixels)
    with pytest.raises(ValueError, match='has no attention output'):
        wrapped.attend_features(encoder.features(pixels))


def test_export_refuses_a_model_of_another_decoder_or_grid(trained, tmp_path):
    model, config, vocab = trained
    with pytest.raises(ValueError, match='must be a ShowAndTell, got ShowAttendAndTell'):
        shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(ShowAndTellConfig)}
        export.export_captioner(model, ShowAndTellConfig(**shared), encoders.DEFAULT, vocab, str(tmp_path / 'a'))
    with pytest.raises(ValueError, match='grid_cells'):
        export.export_captioner(model, dataclasses.replace(config, grid_cells=64), encoders.DEFAULT, vocab,
                                str(tmp_path / 'b'))
    assert not list(tmp_path.iterdir())
