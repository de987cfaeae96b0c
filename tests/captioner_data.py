"""A small exported captioner that really captions real photos, and a photo folder as users have them.

``train_and_export`` teaches a tiny Show-and-Tell (from the real encoder's
pooled features) or Show-Attend-and-Tell (from its feature maps) one caption
per scikit-image photo in seconds and exports it: enough for tests of everything downstream of training to check real
captions, not shapes.
"""
import io
import struct
import zlib

import keras
import numpy as np
import skimage.data
import tensorflow as tf
from PIL import Image

from img2txt.model.networks import decoders, encoders
from img2txt.model.networks.attention import AttentionConfig
from img2txt.model.networks.caption_ops import masked_loss, split_caption_ids
from img2txt.model.networks.show_and_tell import ShowAndTellConfig
from img2txt.model.serving import export, image_decoding
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import vocabulary

# What the model is trained to say about each photo.
CAPTIONS = {
    'coffee': 'a cup of coffee on a saucer',
    'chelsea': 'a cat looking at the camera',
    'astronaut': 'a woman in a space suit',
    'rocket': 'a rocket on the launch pad',
}
# Words it never learns to say, so that the vocabulary is more than the answers.
UNUSED_WORDS = ['dog', 'red', 'blue', 'car', 'tree', 'man', 'sky', 'water']


def encoded(image, fmt, **save_args):
    """The bytes of a Pillow image saved as ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def photo(name):
    """scikit-image's photo ``name`` as a Pillow image."""
    return Image.fromarray(getattr(skimage.data, name)())


def photos_jpeg(quality=90):
    """name → JPEG bytes of each photo in CAPTIONS."""
    return {name: encoded(photo(name), 'JPEG', quality=quality) for name in CAPTIONS}


def png_declaring(width, height):
    """A tiny valid PNG whose header claims width × height: a decompression bomb's shape."""
    data = bytearray(encoded(Image.new('RGB', (1, 1)), 'PNG'))
    ihdr = struct.pack('>II', width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack('>I', zlib.crc32(b'IHDR' + ihdr))
    return bytes(data)


def train_captioner(encoder, jpegs, *, seed, max_steps=1000, decoder=decoder_names.SHOW_AND_TELL):
    """(model, config, vocab): a small caption model that has learnt CAPTIONS from the photos' JPEGs.

    ``decoder`` (``schemas.decoder_names.NAMES``): a Show-and-Tell on the
    encoder's pooled features, or a Show-Attend-and-Tell on its feature maps
    (``[B, H x W, C]``, as ``image_features`` gives them). ``seed``: the
    ``training_seed`` fixture's; memorising four captions holds for any seed.
    """
    words = sorted({word for caption in CAPTIONS.values() for word in caption.split()})
    vocab = [*vocabulary.RESERVED_TOKENS, *words, *UNUSED_WORDS]
    sizes = dict(vocab_size=len(vocab), feature_dim=encoder.feature_dim, embedding_size=64, lstm_units=64,
                 lstm_dropout_keep_prob=1.0, max_caption_length=12)
    if decoder == decoder_names.ATTENTION:
        height, width, channels = encoder.spatial_shape
        config = AttentionConfig(**{**sizes, 'feature_dim': channels}, attention_units=64,
                                 grid_cells=height * width)
    else:
        config = ShowAndTellConfig(**sizes)
    keras.utils.set_random_seed(seed)
    model = decoders.get(decoder).build(config)
    features = image_features(encoder, [jpegs[name] for name in CAPTIONS], decoder)
    ids = {token: i for i, token in enumerate(vocab)}
    length = max(len(caption.split()) for caption in CAPTIONS.values()) + 2
    caption_ids = np.full((len(CAPTIONS), length), vocabulary.PAD_ID, np.int32)
    for row, caption in enumerate(CAPTIONS.values()):
        tokens = [vocabulary.START_ID, *(ids[w] for w in caption.split()), vocabulary.END_ID]
        caption_ids[row, :len(tokens)] = tokens
    input_ids, target_ids = split_caption_ids(caption_ids)
    optimizer = keras.optimizers.Adam(0.01)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = masked_loss(target_ids, model((features, input_ids), training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
        return loss

    # Until it knows them: how many steps that takes depends on the seed and the CPU's kernels (49 to 403
    # for seeds 0-7, either TF_ENABLE_ONEDNN_OPTS; 150 fixed steps left seed 1's attention model short).
    for step in range(max_steps):
        loss = float(train_step())
        if loss < 0.01:
            break
    assert loss < 0.01, f'the fixture model should have learnt its captions (loss {loss:.4f} after {step + 1} steps)'
    return model, config, vocab


def image_features(encoder, images, decoder):
    """What ``decoder`` reads of each image file, decoded by the pipelines' decoder: ``[B, D]`` or ``[B, H x W, D]``."""
    pixels = np.stack([image_decoding.decode(data, encoder.input_spec) for data in images])
    if decoders.get(decoder).reads_spatial_map:
        maps = encoder.spatial_features(pixels)
        return maps.reshape(len(maps), -1, maps.shape[-1])
    return encoder.features(pixels)


def train_and_export(export_dir, *, seed, decoder=decoder_names.SHOW_AND_TELL,
                     spatial_layer=encoders.DEFAULT_SPATIAL_LAYER):
    """Trains the small captioner with ``decoder`` (attention: on ``spatial_layer``'s maps) and exports it to
    ``export_dir``; returns the model id."""
    encoder = encoders.load(spatial_layer=spatial_layer)
    model, config, vocab = train_captioner(encoder, photos_jpeg(), seed=seed, decoder=decoder)
    return export.export_captioner(model, config, encoders.DEFAULT, vocab, export_dir, spatial_layer=spatial_layer)
