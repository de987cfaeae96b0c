"""The exported captioner: a SavedModel from images to their best captions.

Training writes it (``model.serving.export``); the caption pipeline and anything that
serves it read it. It loads with TensorFlow alone (``tf.saved_model.load``),
without img2txt. Its directory holds:

  saved_model.pb, variables/   the SavedModel (TensorFlow's own files)
  assets/vocab.txt             the vocabulary (``schemas.vocabulary``: its
                               format and file name)
  model_id.txt                 the model id, one line
  captioner.json               the config: the ``CONFIG_*`` fields below

The decoder is Show and Tell (pooled image vectors) or Show, Attend and Tell
(soft attention over the encoder's grid); the config's CONFIG_DECODER names
it, and the model id starts with that name (``show_and_tell@...``,
``attention@...``). Both have the same signatures, so callers need not know
which they load, except to feed caption_features.

Signatures, each with a dynamic batch size B (0 included); k is the beam size:

  caption_images    images    string [B]            image file bytes (JPEG,
                                                    PNG, GIF, BMP or WebP),
                                                    decoded and cropped in-graph
  caption_pixels    pixels    uint8 [B, S, S, 3]    the encoder's input crop,
                                                    as the pipelines' decoder
                                                    makes it
  caption_features  features  float32 [B, D]        Show and Tell: pooled
                                                    encoder features
                              float32 [B, L, C]     attention: the encoder's
                                                    feature map, its H x W
                                                    cells row by row
                                                    (L = H x W; [H, W, C] is
                                                    the config's encoder
                                                    spatial_shape, the map of
                                                    its spatial_layer)
  serving_default             = caption_images

caption_images fails the whole call (InvalidArgumentError) when one image
cannot be decoded; for empty input, another format or a header declaring
more than the config's max_pixels pixels (width × height, read before any
pixel is decoded: a decompression bomb) the message names the image's index
in the batch and, for the last, its declared size. Callers that need
per-image errors decode with the pipelines' decoder and call caption_pixels,
with the same limit. Its decoding follows the pipelines' Pillow decoder
(``model.serving.graph_decoding`` lists the differences): EXIF orientation applied,
transparency composited on white (GIF's included), an animation's first
frame.

and every one returns, best caption first:

  captions   string [B, k]   words joined by single spaces, no reserved tokens
  log_probs  float32 [B, k]  log-probability of each caption (-inf: no caption)
  lengths    int32 [B, k]    tokens in each caption, unknown words included

and, from attention exports only (Show and Tell exports have no such output):

  attention  float32 [B, T, H, W]  where the decoder looked for each word of
                                   the best caption: row t the weights over
                                   the grid of word t (summing to 1); rows
                                   past the caption's last word are 0.
                                   T is the config's max_caption_length.

The loaded object also has these attributes: ``model_id``, ``encoder_id`` and
``config`` (JSON text) as string ``tf.Variable``s, ``vocabulary`` as a string
``tf.Variable`` ``[V]`` (token id -> token).
"""

# 2: the decoder field, attention exports.
FORMAT_VERSION = 2

# Signature names.
CAPTION_IMAGES = 'caption_images'
CAPTION_PIXELS = 'caption_pixels'
CAPTION_FEATURES = 'caption_features'
SERVING_DEFAULT = 'serving_default'

# Signature inputs.
IMAGES = 'images'
PIXELS = 'pixels'
FEATURES = 'features'

# Signature outputs.
CAPTIONS = 'captions'
LOG_PROBS = 'log_probs'
LENGTHS = 'lengths'
ATTENTION = 'attention'   # attention exports only

# Attributes of the loaded object.
MODEL_ID = 'model_id'
ENCODER_ID = 'encoder_id'
CONFIG = 'config'
VOCABULARY = 'vocabulary'

# Files in the export directory, besides TensorFlow's own.
MODEL_ID_FILE = 'model_id.txt'
CONFIG_FILE = 'captioner.json'

# Fields of the config (captioner.json and the ``config`` attribute).
CONFIG_FORMAT = 'format_version'
CONFIG_MODEL = 'model'        # the decoder's config, to_dict(): sizes and decoding options
MODEL_BEAM_SIZE = 'beam_size'  # of CONFIG_MODEL: the captions each signature returns per image
# One of schemas.decoders.NAMES: which model CONFIG_MODEL configures (older
# exports lack it: decoders.UNNAMED).
CONFIG_DECODER = 'decoder'
CONFIG_ENCODER = 'encoder'    # Encoder.describe(): the fields of schemas.manifest.ENCODER
# int: caption_images refuses images whose header declares more pixels than
# this; callers decoding with the pipelines' decoder pass it as its max_pixels.
CONFIG_MAX_PIXELS = 'max_pixels'
