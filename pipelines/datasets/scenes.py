"""Generated scenes with known captions: the demo's dataset.

Each scene is one or two flat shapes (8 colours, 5 shapes, 2 sizes) on a
grey background, two shapes placed left/right/above/below each other, with
five template captions that say what is where. Scenes are drawn from a seed,
so the same seed gives the same images and captions. The output is the
``jsonl`` dataset format that ``img2txt preprocess`` reads.

The dataset teaches where Show and Tell fails. A few colour-shape pairs
(``HELD_OUT``) never appear in train or val, though their colours and shapes
do, in other pairs. The test split has two subsets: ``seen`` (new scenes of
pairs seen in training) and ``held_out`` (each scene shows at least one
held-out pair). Every scene's record lists its objects as "mentions" ("red
triangle"): a right caption names each of them, so ``img2txt evaluate``
measures how often colours stay bound to their shapes on both subsets.
"""
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    'red': (210, 40, 40), 'green': (40, 160, 60), 'blue': (40, 70, 210), 'yellow': (235, 210, 40),
    'purple': (130, 50, 170), 'orange': (240, 130, 30), 'white': (250, 250, 250), 'black': (20, 20, 20),
}
SHAPES = ('circle', 'square', 'triangle', 'diamond', 'cross')
SIZES = {'small': 34, 'large': 62}
# Relation of the first shape to the second, and the same fact seen from the second.
RELATIONS = {'left': ('to the left of', 'to the right of'), 'right': ('to the right of', 'to the left of'),
             'above': ('above', 'below'), 'below': ('below', 'above')}
IMAGE_SIZE = 256
# Colour-shape pairs that appear only in the test split's held-out subset.
HELD_OUT = (('red', 'triangle'), ('blue', 'circle'), ('green', 'square'), ('yellow', 'diamond'),
            ('purple', 'cross'), ('orange', 'circle'))
SEEN, HELD_OUT_SUBSET = 'seen', 'held_out'


def _draw(draw, shape, colour, centre, size):
    x, y = centre
    r = size / 2
    fill = COLOURS[colour]
    if shape == 'circle':
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif shape == 'square':
        draw.rectangle((x - r, y - r, x + r, y + r), fill=fill)
    elif shape == 'triangle':
        draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=fill)
    elif shape == 'diamond':
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=fill)
    else:
        w = r / 3
        draw.rectangle((x - w, y - r, x + w, y + r), fill=fill)
        draw.rectangle((x - r, y - w, x + r, y + w), fill=fill)


def _a(word):
    return f'an {word}' if word[0] in 'aeiou' else f'a {word}'


def _captions(objects, relation):
    (s1, c1, z1), *rest = objects
    if not rest:
        return [f'{_a(z1)} {c1} {s1}', f'{_a(c1)} {s1} on a grey background', f'there is {_a(z1)} {c1} {s1}',
                f'a picture of {_a(c1)} {s1}', f'one {z1} {c1} {s1} in the picture']
    (s2, c2, z2), = rest
    forward, backward = RELATIONS[relation]
    return [f'{_a(c1)} {s1} {forward} {_a(c2)} {s2}', f'{_a(z1)} {c1} {s1} and {_a(z2)} {c2} {s2}',
            f'there is {_a(c1)} {s1} {forward} {_a(c2)} {s2}', f'{_a(c2)} {s2} {backward} {_a(c1)} {s1}',
            f'two shapes {_a(c1)} {s1} and {_a(c2)} {s2}']


def _objects(rng, held_out):
    """One or two (shape, colour, size), of different colours; ``held_out``: whether a HELD_OUT pair is among them."""
    while True:
        count = int(rng.integers(1, 3))
        objects = []
        for _ in range(count):
            colour = str(rng.choice(list(COLOURS)))
            while objects and colour == objects[0][1]:
                colour = str(rng.choice(list(COLOURS)))
            objects.append((str(rng.choice(SHAPES)), colour, str(rng.choice(list(SIZES)))))
        if any((colour, shape) in HELD_OUT for shape, colour, _ in objects) == held_out:
            return objects


def mentions(objects):
    """The phrases a right caption of a scene with ``objects`` contains: each object's "colour shape"."""
    return [f'{colour} {shape}' for shape, colour, _ in objects]


def scene(rng, held_out=False):
    """Draws one random scene; returns (PIL image, five captions, its objects as (shape, colour, size)).

    ``held_out``: the scene shows at least one HELD_OUT pair, or (False) none.
    """
    image = Image.new('RGB', (IMAGE_SIZE, IMAGE_SIZE), tuple(int(v) for v in rng.integers(110, 150, 3)))
    draw = ImageDraw.Draw(image)
    objects = _objects(rng, held_out)
    count = len(objects)
    centre = IMAGE_SIZE / 2
    relation = None
    if count == 1:
        jitter = rng.uniform(-20, 20, 2)
        shape, colour, size = objects[0]
        _draw(draw, shape, colour, (centre + jitter[0], centre + jitter[1]), SIZES[size])
    else:
        # Keep both shapes inside the decoder's centre crop (224 of 256).
        relation = str(rng.choice(list(RELATIONS)))
        offset = 50
        angle = {'left': math.pi, 'right': 0.0, 'above': -math.pi / 2, 'below': math.pi / 2}[relation]
        dx, dy = offset * math.cos(angle), offset * math.sin(angle)
        jitter = rng.uniform(-8, 8, 2)
        for (shape, colour, size), sign in zip(objects, (1, -1)):
            _draw(draw, shape, colour, (centre + sign * dx + jitter[0], centre + sign * dy + jitter[1]),
                  SIZES[size])
    return image, _captions(objects, relation), objects


def write_scenes(folder, count, seed=0, splits=(0.8, 0.1, 0.1)):
    """Writes ``count`` scenes as JPEGs under ``folder/images`` and their captions as JSONL.

    Returns (captions path, images folder). Splits are train/val/test in the
    given proportions; train and val show no HELD_OUT pair; the test split's
    first half is the ``seen`` subset, its second half ``held_out``.
    """
    rng = np.random.default_rng(seed)
    images = os.path.join(folder, 'images')
    os.makedirs(images, exist_ok=True)
    bounds = np.cumsum(splits) * count
    test_middle = (bounds[1] + count) / 2
    lines = []
    for i in range(count):
        split = 'train' if i < bounds[0] else 'val' if i < bounds[1] else 'test'
        subset = '' if split != 'test' else SEEN if i < test_middle else HELD_OUT_SUBSET
        image, captions, objects = scene(rng, held_out=subset == HELD_OUT_SUBSET)
        name = f'scene{i:05d}.jpg'
        image.save(os.path.join(images, name), quality=92)
        record = {'image': name, 'captions': captions, 'split': split, 'mentions': mentions(objects)}
        if subset:
            record['subset'] = subset
        lines.append(json.dumps(record))
    path = os.path.join(folder, 'captions.jsonl')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return path, images
