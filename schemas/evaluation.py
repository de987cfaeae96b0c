"""What ``img2txt evaluate`` writes: corpus metrics per subset, and one row per image.

Under ``--output``::

  metrics.json              {FIELDS below}: the model, the split, and METRICS per subset
  images.parquet            one row per evaluated image (IMAGES_SCHEMA)

Metric names are the COCO caption evaluation's (pycocoevalcap), on its 0-1
scale (CIDEr-D up to 10): ``BLEU-1`` .. ``BLEU-4``, ``METEOR``, ``ROUGE-L``,
``CIDEr-D``. METEOR needs Java; without it its value is the string
``METEOR_SKIPPED``, never a number. ``MENTIONS_RIGHT`` is the share of
captions that contain every phrase the dataset says a right caption must
contain (the demo's scenes: each object's "colour shape"); it is present only
when the dataset gives such phrases.
"""
import pyarrow as pa

METRICS_FILE = 'metrics.json'
IMAGES_FILE = 'images.parquet'

# metrics.json fields.
MODEL = 'model'                  # the export directory
MODEL_ID = 'model_id'
SPLIT = 'split'
DATA = 'data'                    # what was evaluated: {DATA_DIR: DIR} or {DATA_DATASET, DATA_CAPTIONS, DATA_IMAGES}
DATA_DIR = 'data'                # the preprocess output whose records were captioned
DATA_DATASET = 'dataset'         # or a caption dataset read directly: its format,
DATA_CAPTIONS = 'captions'       # its caption file
DATA_IMAGES = 'images'           # and its images folder
NOT_SCORED_REASON = 'reason'     # of each NOT_SCORED_EXAMPLES entry, beside its IMAGE_ID
SUBSETS = 'subsets'              # {subset: {IMAGES_COUNT, metric: value}}; ALL is every image
ALL = 'all'
IMAGES_COUNT = 'images'
NOT_SCORED = 'not_scored'        # images of the split that could not be captioned, so are not in the scores
NOT_SCORED_EXAMPLES = 'not_scored_examples'  # the first of them: [{IMAGE_ID, 'reason'}]

BLEU = tuple(f'BLEU-{n}' for n in range(1, 5))
METEOR = 'METEOR'
ROUGE_L = 'ROUGE-L'
CIDER_D = 'CIDEr-D'
MENTIONS_RIGHT = 'mentions_right'
METRICS = (*BLEU, METEOR, ROUGE_L, CIDER_D)
METEOR_SKIPPED = 'skipped: no Java'

# images.parquet columns.
IMAGE_ID = 'image_id'
IMAGE_PATH = 'image_path'
SUBSET = 'subset'                # '' when the dataset defines none
CAPTION = 'caption'              # the best caption
REFERENCES = 'references'
IMAGE_CIDER_D = 'cider_d'        # this image's CIDEr-D (against the whole split's statistics)
MENTIONS = 'mentions'            # the phrases a right caption must contain (may be empty)
NAMES_MENTIONS = 'names_mentions'  # whether the caption contains all of them (null without phrases)

IMAGES_SCHEMA = pa.schema([
    pa.field(IMAGE_ID, pa.string(), nullable=False),
    pa.field(IMAGE_PATH, pa.string(), nullable=False),
    pa.field(SUBSET, pa.string(), nullable=False),
    pa.field(CAPTION, pa.string(), nullable=False),
    pa.field(REFERENCES, pa.list_(pa.string()), nullable=False),
    pa.field(IMAGE_CIDER_D, pa.float64(), nullable=False),
    pa.field(MENTIONS, pa.list_(pa.string()), nullable=False),
    pa.field(NAMES_MENTIONS, pa.bool_()),
])
