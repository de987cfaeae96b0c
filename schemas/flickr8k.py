"""The Flickr8k recipe (``img2txt flickr8k``, ``make flickr8k``): what it reads and the layout of what it writes.

    FLICKR8K/dataset_flickr8k.json   Karpathy's split file (train, val, and test where the download has it)
    FLICKR8K/images/NAME.jpg         the photos it names

    OUTPUT/data/                     the preprocess output (schemas.manifest)
    OUTPUT/cross_entropy/            model dir of the cross-entropy stage (schemas.training_run), its exports
    OUTPUT/model/                    model dir of the self-critical stage: the recommended captioner,
                                     exported at OUTPUT/model/export/STEP
    OUTPUT/evaluation/STAGE/         img2txt evaluate of each stage's export on val (schemas.evaluation)
"""

CAPTIONS_FILE = 'dataset_flickr8k.json'
IMAGES_DIR = 'images'

DATA_DIR = 'data'
CROSS_ENTROPY_DIR = 'cross_entropy'
MODEL_DIR = 'model'
EVALUATION_DIR = 'evaluation'
