"""``img2txt describe``: the quick look: captions of a few images, printed, without Beam.

Loads the exported captioner once and prints each image's top captions with
their probabilities, as im2txt's ``run_inference`` did (without its special
tokens in the text). Images are decoded by the pipelines' decoder, so the
captions are those the caption pipeline writes.
"""
import math
import sys

import numpy as np

from img2txt.model import storage
from img2txt.model.serving import image_decoding
from img2txt.model.serving.captioner import Captioner


def register(subparsers):
    """Adds the ``describe`` subcommand."""
    parser = subparsers.add_parser('describe', help='print the top captions of a few images (no Beam)',
                                   description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True, metavar='EXPORT_DIR',
                        help='exported captioner (MODEL_DIR/export/STEP), local or gs://')
    parser.add_argument('images', nargs='+', metavar='IMAGE', help='image files, local or gs://')
    parser.add_argument('--top-k', type=int, default=None,
                        help="captions to print per image; default: the model's beam size")
    parser.add_argument('--max-pixels', type=int, default=None,
                        help="refuse images declaring more pixels than this (default: the export's limit)")
    parser.set_defaults(run=run)


def run(args, beam_args):
    """Prints the captions of each image; a bad image is one line on stderr; exit status 1 if any failed."""
    captioner = Captioner.load(args.model, batch_size=min(len(args.images), 32))
    if args.top_k is not None and not 1 <= args.top_k <= captioner.beam_size:
        raise ValueError(f'--top-k must be in [1, {captioner.beam_size}] (the model\'s beam size), got {args.top_k}')
    names, crops, failed = [], [], 0
    for image in args.images:
        try:
            crops.append(image_decoding.decode(storage.read_bytes(image), captioner.input_spec,
                                               args.max_pixels or captioner.max_pixels))
            names.append(image)
        except (OSError, image_decoding.ImageDecodeError) as e:
            failed += 1
            print(f'{image}: error: {type(e).__name__}: {e}', file=sys.stderr)
    if crops:
        for image, candidates in zip(names, captioner.caption(np.stack(crops), args.top_k)):
            print(f'Captions for {image}:')
            for rank, candidate in enumerate(candidates):
                print(f'  {rank}) {candidate.caption} (p={math.exp(candidate.log_prob):.6f})')
    return 1 if failed else 0
