"""``img2txt demo``: the project end to end on data that ships with it.

Classifies the sample photos in ``jobs/samples/`` with the default encoder:
the packaged ImageNet weights, the shared decoder and the encoder's head,
offline.
"""
import importlib.resources

from img2txt.jobs import classify
from img2txt.model import encoders


def sample_photos():
    """Paths of the bundled sample photos, sorted by name."""
    folder = importlib.resources.files('img2txt.jobs') / 'samples'
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith('.jpg'))


def register(subparsers):
    """Adds the ``demo`` subcommand."""
    parser = subparsers.add_parser('demo', help='run img2txt end to end on the bundled sample photos',
                                   description=__doc__.split('\n\n')[0])
    parser.add_argument('--top', type=int, default=3, help='classes to print per photo (default: %(default)s)')
    parser.set_defaults(run=run)


def run(args, beam_args):
    """Prints the top classes of each sample photo."""
    encoder = encoders.load()
    print(f'Classifying {len(sample_photos())} sample photos with {encoder.id} (ImageNet weights, offline):')
    for image, classes in classify.classify(encoder, sample_photos(), args.top):
        print(f'{image.rsplit("/", 1)[-1]}: ' + ', '.join(f'{name} {p:.0%}' for _, _, name, p in classes))
    return 0
