"""``img2txt classify``: top ImageNet classes of photos, with the encoder's own head.

It proves an encoder's weights and the shared decoder end to end: a wrong
weight port or pixel scaling shows at once as a wrong label on a known photo.
"""
import json
import sys

import numpy as np

from img2txt.model import storage
from img2txt.model.networks import encoders
from img2txt.model.serving import image_decoding

BATCH_SIZE = 32


def register(subparsers):
    """Adds the ``classify`` subcommand."""
    parser = subparsers.add_parser(
        'classify', help='top ImageNet classes of images (checks an encoder and its weights)',
        description='Print the top ImageNet-1k classes of each image, using the encoder\'s classification '
                    'head. Images may be local paths or gs:// URLs, in any supported format.')
    parser.add_argument('images', nargs='+', metavar='IMAGE', help='image files (local or gs://)')
    parser.add_argument('--encoder', default=encoders.DEFAULT, choices=encoders.names(),
                        help='encoder to classify with (default: %(default)s)')
    parser.add_argument('--weights', default=None,
                        help='encoder weights: a local file, or "imagenet" (default: the encoder\'s packaged weights)')
    parser.add_argument('--top', type=int, default=5, help='classes to print per image (default: %(default)s)')
    parser.add_argument('--json', action='store_true', help='print one JSON object per image instead of text')
    parser.set_defaults(run=run)


def classify(encoder, images, top=5):
    """Yields ``(image, [(class_index, wordnet_id, name, probability), ...])`` or ``(image, error)``.

    Images are decoded with the pipelines' decoder and classified in batches;
    an image that cannot be read or decoded yields its exception instead.
    """
    labels = encoders.imagenet_labels()
    for start in range(0, len(images), BATCH_SIZE):
        batch, names = [], []
        for image in images[start:start + BATCH_SIZE]:
            try:
                batch.append(image_decoding.decode(storage.read_bytes(image), encoder.input_spec))
                names.append(image)
            except (OSError, image_decoding.ImageDecodeError) as e:
                yield image, e
        if not batch:
            continue
        logits = encoder.logits(np.stack(batch)).astype(np.float64)
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        for image, p in zip(names, probabilities):
            best = np.argsort(-p, kind='stable')[:top]
            yield image, [(int(i), labels[i][0], labels[i][1], float(p[i])) for i in best]


def run(args, beam_args):
    """Prints the classes of each image; exit status 1 if any image failed."""
    if args.top < 1:
        raise ValueError(f'--top must be at least 1, got {args.top}')
    encoder = encoders.load(args.encoder, weights=args.weights)
    failed = 0
    for image, result in classify(encoder, args.images, args.top):
        if isinstance(result, Exception):
            failed += 1
            print(f'{image}: error: {type(result).__name__}: {result}', file=sys.stderr)
        elif args.json:
            print(json.dumps({'image': image, 'encoder': encoder.id, 'classes': [
                {'index': i, 'wordnet_id': w, 'name': n, 'probability': round(p, 6)} for i, w, n, p in result]}))
        else:
            print(image)
            for i, _, name, p in result:
                print(f'  {p:6.1%}  {name} ({i})')
    return 1 if failed else 0
