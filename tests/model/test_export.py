"""The exported captioner: real encoder, a briefly trained Show-and-Tell, real photos, a fresh TF-only process."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from captioner_data import CAPTIONS, encoded, photo, png_declaring, train_captioner
from img2txt.model.input_spec import DEFAULT_MAX_PIXELS
from img2txt.model.networks import encoders
from img2txt.model.networks.show_and_tell import ShowAndTell, ShowAndTellConfig
from img2txt.model.serving import export, image_decoding
from img2txt.model.serving.beam_search import beam_search, texts
from img2txt.model.serving.captioner import Captioner
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import captioner, manifest, vocabulary

@pytest.fixture(scope='module')
def encoder():
    return encoders.load()


@pytest.fixture(scope='module')
def photos():
    """name → (JPEG bytes, PNG bytes) of scikit-image's photos."""
    return {name: (encoded(photo(name), 'JPEG', quality=90), encoded(photo(name), 'PNG')) for name in CAPTIONS}


def pillow_pixels(data, encoder):
    return image_decoding.decode(data, encoder.input_spec)


@pytest.fixture(scope='module')
def trained(encoder, photos, training_seed):
    """(model, config, vocab): a small Show-and-Tell that has learnt CAPTIONS from the photos' JPEG features."""
    return train_captioner(encoder, {name: jpeg for name, (jpeg, _) in photos.items()}, seed=training_seed)


def caption(loaded, signature, inputs):
    """The signature's outputs as NumPy arrays, captions as Python strings."""
    outputs = loaded.signatures[signature](tf.convert_to_tensor(inputs))
    result = {key: value.numpy() for key, value in outputs.items()}
    result[captioner.CAPTIONS] = export.captions_text(outputs[captioner.CAPTIONS])
    return result


# A fresh interpreter that refuses to import img2txt (it is installed in the
# venv, so -I alone would not stop it): loading must need TensorFlow only.
# It gets the schema's names as its first argument, and prints the attention
# output only where the export has one.
_LOAD_WITHOUT_IMG2TXT = """
import json, sys

class NoImg2txt:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'img2txt':
            raise ImportError('img2txt is not available here')

sys.meta_path.insert(0, NoImg2txt())
import tensorflow as tf

names, export_dir, paths = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
loaded = tf.saved_model.load(export_dir)
images = [open(path, 'rb').read() for path in paths]
outputs = loaded.signatures[names['signature']](tf.constant(images))
print(json.dumps({
    'captions': [[c.decode() for c in row] for row in outputs[names['captions']].numpy()],
    'log_probs': outputs[names['log_probs']].numpy().tolist(),
    'attention': outputs[names['attention']].numpy().tolist() if names['attention'] in outputs else None,
    'shapes': {key: value.shape.as_list() for key, value in outputs.items()},
    'model_id': getattr(loaded, names['model_id']).numpy().decode(),
    'vocabulary': [t.decode() for t in getattr(loaded, names['vocabulary']).numpy()],
    'img2txt_imported': any(m.split('.')[0] == 'img2txt' for m in sys.modules),
}))
"""


def caption_without_img2txt(export_dir, jpegs, tmp_path):
    """Captions the JPEG files' bytes with the export's serving_default in a process that has TensorFlow only.

    Returns its captions, log_probs and attention (None when the export has
    no such output) as lists, the outputs' shapes, the model id and the
    vocabulary it read, and whether img2txt got imported.
    """
    paths = []
    for i, data in enumerate(jpegs):
        paths.append(tmp_path / f'{i}.jpg')
        paths[-1].write_bytes(data)
    names = json.dumps({'signature': captioner.SERVING_DEFAULT, 'captions': captioner.CAPTIONS,
                        'log_probs': captioner.LOG_PROBS, 'attention': captioner.ATTENTION,
                        'model_id': captioner.MODEL_ID, 'vocabulary': captioner.VOCABULARY})
    process = subprocess.run(
        [sys.executable, '-I', '-c', _LOAD_WITHOUT_IMG2TXT, names, export_dir, *map(str, paths)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_fresh_tensorflow_process_captions_jpeg_bytes(exported, loaded, photos, trained, tmp_path):
    export_dir, model_id = exported
    _, config, vocab = trained
    result = caption_without_img2txt(export_dir, [photos[name][0] for name in CAPTIONS], tmp_path)

    assert not result['img2txt_imported']
    assert result['attention'] is None
    k = config.beam_size
    assert result['shapes'] == {captioner.CAPTIONS: [4, k], captioner.LOG_PROBS: [4, k], captioner.LENGTHS: [4, k]}
    assert [row[0] for row in result['captions']] == list(CAPTIONS.values())
    for row in result['captions']:
        for text in row:
            assert text and not set(text.split()) & set(vocabulary.RESERVED_TOKENS)
    in_process = caption(loaded, captioner.CAPTION_IMAGES, [photos[name][0] for name in CAPTIONS])
    assert result['captions'] == in_process[captioner.CAPTIONS]
    np.testing.assert_allclose(result['log_probs'], in_process[captioner.LOG_PROBS], rtol=1e-5)
    assert result['model_id'] == model_id
    assert result['vocabulary'] == vocab


def test_export_directory_contents(exported, loaded, trained, encoder):
    export_dir, model_id = exported
    _, config, vocab = trained
    with open(os.path.join(export_dir, captioner.MODEL_ID_FILE), encoding='utf-8') as f:
        assert f.read().strip() == model_id
    vocab_file = os.path.join(export_dir, tf.saved_model.ASSETS_DIRECTORY, vocabulary.VOCABULARY_FILE)
    assert vocabulary.read(vocab_file) == vocab
    with open(os.path.join(export_dir, captioner.CONFIG_FILE), encoding='utf-8') as f:
        config_json = f.read()
    assert getattr(loaded, captioner.CONFIG).numpy().decode() == config_json
    saved = json.loads(config_json)
    assert ShowAndTellConfig.from_dict(saved[captioner.CONFIG_MODEL]) == config
    assert saved[captioner.CONFIG_ENCODER][manifest.ENCODER_ID] == encoder.id
    assert saved[captioner.CONFIG_MAX_PIXELS] == DEFAULT_MAX_PIXELS
    assert saved[captioner.CONFIG_DECODER] == decoder_names.SHOW_AND_TELL
    assert getattr(loaded, captioner.ENCODER_ID).numpy().decode() == encoder.id
    assert getattr(loaded, captioner.MODEL_ID).numpy().decode() == model_id
    assert set(loaded.signatures) == {captioner.CAPTION_IMAGES, captioner.CAPTION_PIXELS,
                                      captioner.CAPTION_FEATURES, captioner.SERVING_DEFAULT}


@pytest.mark.parametrize('fmt', [0, 1], ids=['jpeg', 'png'])
def test_bytes_pixels_and_features_agree(loaded, photos, encoder, trained, fmt):
    model, config, vocab = trained
    images = [photos[name][fmt] for name in CAPTIONS]
    pixels = np.stack([pillow_pixels(data, encoder) for data in images])
    from_bytes = caption(loaded, captioner.CAPTION_IMAGES, images)
    from_pixels = caption(loaded, captioner.CAPTION_PIXELS, pixels)
    features = encoder.features(pixels)
    from_features = caption(loaded, captioner.CAPTION_FEATURES, features)

    # In-graph decoding differs from Pillow's by rounding: the same best caption.
    assert [row[0] for row in from_bytes[captioner.CAPTIONS]] == list(CAPTIONS.values())
    assert [row[0] for row in from_pixels[captioner.CAPTIONS]] == list(CAPTIONS.values())
    # The pixels path is the encoder, then the features path.
    for key in (captioner.CAPTIONS, captioner.LENGTHS):
        np.testing.assert_array_equal(from_pixels[key], from_features[key])
    np.testing.assert_allclose(from_pixels[captioner.LOG_PROBS], from_features[captioner.LOG_PROBS], rtol=1e-6)
    # The exported search is the model's own: the same captions as beam_search on its weights.
    result = beam_search(model, features, config.beam_size, config.max_caption_length)
    assert from_features[captioner.CAPTIONS] == export.captions_text(texts(result.token_ids, vocab))
    np.testing.assert_allclose(from_features[captioner.LOG_PROBS], result.log_probs, rtol=1e-5)


def test_a_squash_export_resizes_as_the_pipelines_do_for_it(trained, photos, tmp_path):
    # Trained on squashed photos (preprocess --resize squash), a captioner must see squashed photos everywhere.
    model, config, vocab = trained
    export_dir = str(tmp_path / 'squash')
    export.export_captioner(model, config, encoders.DEFAULT, vocab, export_dir, resize_mode='squash')
    wrapped = Captioner.load(export_dir)
    assert wrapped.input_spec.resize_mode == 'squash'
    jpegs = [photos[name][0] for name in CAPTIONS]
    pixels = np.stack([image_decoding.decode(data, wrapped.input_spec) for data in jpegs])
    # Not the crop: the photos are not square, so the whole of each differs from its centre.
    crops = np.stack([image_decoding.decode(data, encoders.load().input_spec) for data in jpegs])
    assert np.abs(pixels.astype(int) - crops).mean() > 10
    from_bytes = caption(export.load_captioner(export_dir), captioner.CAPTION_IMAGES, jpegs)
    assert [row[0] for row in from_bytes[captioner.CAPTIONS]] == [best.caption for [best, *_] in wrapped.caption(pixels)]


def test_batch_equals_one_at_a_time(loaded, photos):
    images = [jpeg for jpeg, _ in photos.values()] + [photos['coffee'][1]]
    batch = caption(loaded, captioner.CAPTION_IMAGES, images)
    for i, image in enumerate(images):
        single = caption(loaded, captioner.CAPTION_IMAGES, [image])
        assert single[captioner.CAPTIONS][0] == batch[captioner.CAPTIONS][i]
        np.testing.assert_array_equal(single[captioner.LENGTHS][0], batch[captioner.LENGTHS][i])
        np.testing.assert_allclose(single[captioner.LOG_PROBS][0], batch[captioner.LOG_PROBS][i], rtol=1e-5)


def test_empty_batches(loaded, encoder, trained):
    k = trained[1].beam_size
    size = encoder.input_spec.size
    for signature, inputs in ((captioner.CAPTION_IMAGES, tf.zeros([0], tf.string)),
                              (captioner.CAPTION_PIXELS, tf.zeros([0, size, size, 3], tf.uint8)),
                              (captioner.CAPTION_FEATURES, tf.zeros([0, encoder.feature_dim]))):
        outputs = loaded.signatures[signature](inputs)
        assert {key: value.shape.as_list() for key, value in outputs.items()} == {
            captioner.CAPTIONS: [0, k], captioner.LOG_PROBS: [0, k], captioner.LENGTHS: [0, k]}


@pytest.mark.parametrize('bad, message', [
    (b'', r'image 1 of the batch \(0 bytes\) is not a JPEG, PNG, GIF, BMP or WebP file'),
    (b'plain text, not an image', r'image 1 of the batch \(24 bytes\)'),
    (encoded(Image.new('RGB', (8, 8)), 'TIFF'), r'image 1 of the batch \(\d+ bytes\)'),
    (encoded(Image.new('RGB', (300, 300)), 'JPEG')[:300], r'JPEG'),
])
def test_a_bad_image_fails_the_bytes_call(loaded, photos, bad, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[captioner.CAPTION_IMAGES](tf.constant([photos['coffee'][0], bad]))


def test_model_id_is_a_content_hash(exported, trained, tmp_path):
    _, model_id = exported
    model, config, vocab = trained
    copy = ShowAndTell(config)
    copy.set_weights(model.get_weights())
    assert export.export_captioner(copy, config, encoders.DEFAULT, vocab, str(tmp_path / 'same')) == model_id

    weights = copy.get_weights()
    weights[-1][vocabulary.NUM_RESERVED] += 1e-3
    copy.set_weights(weights)
    changed = export.export_captioner(copy, config, encoders.DEFAULT, vocab, str(tmp_path / 'changed'))
    assert changed != model_id and changed.startswith('show_and_tell@')


def test_export_refuses_a_non_empty_directory_and_a_mismatched_vocabulary(trained, tmp_path):
    model, config, vocab = trained
    (tmp_path / 'taken').mkdir()
    (tmp_path / 'taken' / 'file').write_text('x')
    with pytest.raises(FileExistsError, match='not empty'):
        export.export_captioner(model, config, encoders.DEFAULT, vocab, str(tmp_path / 'taken'))
    with pytest.raises(ValueError, match='vocab_size'):
        export.export_captioner(model, config, encoders.DEFAULT, vocab + ['extra'], str(tmp_path / 'new'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['taken']


# Loads the export with TensorFlow alone, captions one photo (so that the
# graph is built and warm), then resets the peak RSS (Linux's clear_refs) and
# times the bomb's call. Prints the error, the seconds and the growth of the peak.
_REFUSE_BOMB = """
import json, sys, time
import tensorflow as tf

def peak_kib():
    with open('/proc/self/status') as f:
        return int(next(line for line in f if line.startswith('VmHWM:')).split()[1])

signature, export_dir, photo, bomb = sys.argv[1:]
caption = tf.saved_model.load(export_dir).signatures[signature]
photo, bomb = open(photo, 'rb').read(), open(bomb, 'rb').read()
caption(tf.constant([photo]))
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')
before = peak_kib()
start = time.perf_counter()
try:
    caption(tf.constant([photo, bomb]))
    error = None
except tf.errors.InvalidArgumentError as e:
    error = e.message
seconds = time.perf_counter() - start
print(json.dumps({'error': error, 'seconds': seconds, 'peak_growth_mib': (peak_kib() - before) / 1024}))
"""


def test_a_decompression_bomb_is_refused_from_its_header(exported, photos, tmp_path):
    # 1.2 GB of pixels once decoded (TensorFlow's decoder took 8.7 GB and 33 s for one like it).
    (tmp_path / 'bomb.png').write_bytes(png_declaring(20_000, 20_000))
    (tmp_path / 'photo.jpg').write_bytes(photos['coffee'][0])
    process = subprocess.run(
        [sys.executable, '-I', '-c', _REFUSE_BOMB, captioner.CAPTION_IMAGES, exported[0], str(tmp_path / 'photo.jpg'),
         str(tmp_path / 'bomb.png')], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert result['error'] and (f'image 1 of the batch declares 20000x20000 = 400000000 pixels, more than the '
                                f'limit of {DEFAULT_MAX_PIXELS}') in result['error']
    # Typically milliseconds and a few MiB: the bound is loose for a busy machine, far below a decode.
    assert result['seconds'] < 1.0 and result['peak_growth_mib'] < 200, result


def test_the_pixel_limit_is_the_exports_own(trained, photos, tmp_path):
    model, config, vocab = trained
    height, width = skimage.data.coffee().shape[:2]
    export_dir = str(tmp_path / 'captioner')
    export.export_captioner(model, config, encoders.DEFAULT, vocab, export_dir, max_pixels=width * height - 1)
    loaded = export.load_captioner(export_dir)
    assert json.loads(getattr(loaded, captioner.CONFIG).numpy())[captioner.CONFIG_MAX_PIXELS] == width * height - 1
    assert caption(loaded, captioner.CAPTION_IMAGES, [photos['chelsea'][0]])[captioner.CAPTIONS][0][0] == \
        CAPTIONS['chelsea']
    with pytest.raises(tf.errors.InvalidArgumentError, match=f'image 1 of the batch declares {width}x{height} '):
        loaded.signatures[captioner.CAPTION_IMAGES](tf.constant([photos['chelsea'][0], photos['coffee'][1]]))


def test_exports_to_and_loads_from_gcs(exported, loaded, trained, photos, gcs, gcs_bucket):
    model, config, vocab = trained
    remote = f'gs://{gcs_bucket}/models/captioner'
    assert export.export_captioner(model, config, encoders.DEFAULT, vocab, remote) == exported[1]
    names = {blob.name for blob in gcs.bucket(gcs_bucket).list_blobs()}
    local_files = {os.path.relpath(os.path.join(root, name), exported[0]).replace(os.sep, '/')
                   for root, _, files in os.walk(exported[0]) for name in files}
    assert names == {f'models/captioner/{path}' for path in local_files}

    from_gcs = export.load_captioner(remote)
    assert getattr(from_gcs, captioner.CONFIG).numpy() == getattr(loaded, captioner.CONFIG).numpy()
    images = [photos[name][0] for name in CAPTIONS]
    assert caption(from_gcs, captioner.CAPTION_IMAGES, images)[captioner.CAPTIONS] == \
        caption(loaded, captioner.CAPTION_IMAGES, images)[captioner.CAPTIONS]

    with pytest.raises(FileExistsError, match='not empty'):
        export.export_captioner(model, config, encoders.DEFAULT, vocab, remote)
    with pytest.raises(FileNotFoundError, match='no captioner SavedModel'):
        export.load_captioner(f'gs://{gcs_bucket}/models')
