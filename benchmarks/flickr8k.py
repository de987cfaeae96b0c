"""Which configuration captions Flickr8k val best within one training budget: how ``make flickr8k``'s recipe was chosen.

Each candidate is preprocessed (once per encoder, resize and feature kind),
trained as ``jobs/flickr8k.py``'s recipe trains (``recipe_stages``:
cross-entropy with Adam, batches of 64 captions, caption validation every
epoch and the best checkpoint exported; then self-critical from it), and its
exports are scored on val with ``img2txt evaluate``:

  attention/lite0/squash       the recipe: soft attention over Lite0's 7x7 head map
  show_and_tell/lite0/squash   Show and Tell on Lite0's pooled vector
  show_and_tell/lite0/crop     the same on the photo's centre square instead of all of it
  show_and_tell/lite2/squash   the same with a larger encoder (260x260, 1280-d)

Each is trained once per seed (``--seeds``); a row gives the median over
seeds of BLEU-1..4, METEOR, ROUGE-L and CIDEr-D (CIDEr-D's min and max
beside), the training minutes of the stage, and the export's captions/s on
decoded val photos (encoder and beam search: ``Captioner.caption``,
measure.py's interleaved repeats).

Everything stays under ``--workdir``, named by candidate and seed: a run
that stopped goes on from its checkpoints, and finished stages are only
scored again (their training minutes are kept in ``minutes.json``).

    .venv/bin/python benchmarks/flickr8k.py [--flickr8k ../shared/data/flickr8k] [--workdir /tmp/img2txt-flickr8k]
        [--only show_and_tell/lite0/squash ...] [--seeds 1] [--epochs 6] [--self-critical-epochs 4] [--repeats 5]

About 35-40 minutes of cross-entropy and 20-25 of self-critical training per
candidate and seed on 2 cores, either decoder, plus 2-5 minutes of
preprocessing per encoder, resize and feature kind.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np

import measure
from img2txt.jobs import flickr8k as recipe
from img2txt.model import training
from img2txt.model.networks import decoders
from img2txt.model.serving import image_decoding
from img2txt.model.training import input_pipeline
from img2txt.model.serving.captioner import Captioner
from img2txt.pipelines import evaluate, preprocess
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import evaluation, flickr8k, manifest

# label -> (decoder, encoder, resize)
CANDIDATES = {
    'show_and_tell/lite0/squash': (decoder_names.SHOW_AND_TELL, 'efficientnet_lite0', 'squash'),
    'show_and_tell/lite0/crop': (decoder_names.SHOW_AND_TELL, 'efficientnet_lite0', 'crop'),
    'show_and_tell/lite2/squash': (decoder_names.SHOW_AND_TELL, 'efficientnet_lite2', 'squash'),
    'attention/lite0/squash': (decoder_names.ATTENTION, 'efficientnet_lite0', 'squash'),
}
PHOTOS = 256  # val photos the captions/s figure captions per sample


def data_dir(args, decoder, encoder, resize):
    """The preprocess output a candidate trains on, preprocessed on first use."""
    spatial = decoders.get(decoder).reads_spatial_map
    folder = os.path.join(args.workdir, f'data-{encoder}-{resize}' + ('-spatial' if spatial else ''))
    if not os.path.exists(os.path.join(folder, manifest.FILE_NAME)):
        started = time.perf_counter()
        preprocess.run_config(preprocess.PreprocessConfig(
            dataset='karpathy', captions=os.path.join(args.flickr8k, flickr8k.CAPTIONS_FILE),
            images=os.path.join(args.flickr8k, flickr8k.IMAGES_DIR), output=folder, encoder=encoder, resize=resize,
            spatial_features=spatial), [])
        print(f'preprocessed {folder} in {(time.perf_counter() - started) / 60:.1f} min', flush=True)
    return folder


def run_candidate(args, label, seed):
    """[(stage name, val scores, training minutes, export dir)] of one candidate and seed."""
    decoder, encoder, resize = CANDIDATES[label]
    data = data_dir(args, decoder, encoder, resize)
    document = input_pipeline.read_manifest(data)
    output = os.path.join(args.workdir, label.replace('/', '-') + f'-seed{seed}')
    minutes_file = os.path.join(output, 'minutes.json')
    minutes = json.load(open(minutes_file)) if os.path.exists(minutes_file) else {}
    rows = []
    for directory, name, config in recipe.recipe_stages(document, output, args.epochs, args.self_critical_epochs,
                                                        seed):
        model_dir = os.path.join(output, directory)
        started = time.perf_counter()
        trained = training.train(data, model_dir, {}, config, decoder=decoder,
                                 log=lambda line: print(f'    {label} seed {seed} {name}: {line}', flush=True))
        if trained.step > trained.start_step:
            minutes[name] = minutes.get(name, 0.0) + (time.perf_counter() - started) / 60
            os.makedirs(output, exist_ok=True)
            with open(minutes_file, 'w') as f:
                json.dump(minutes, f)
        metrics = evaluate.run_config(evaluate.EvaluateConfig(
            model=trained.export_dir, output=os.path.join(output, flickr8k.EVALUATION_DIR, directory), data=data,
            split=recipe.VALIDATION_SPLIT), [])
        rows.append((name, metrics[evaluation.SUBSETS][evaluation.ALL], minutes.get(name), trained.export_dir))
    return rows


def captions_per_second(export_dir, paths, repeats):
    """Samples of captions/s of an export on decoded photos (encoder and beam search)."""
    captioner = Captioner.load(export_dir)
    crops = np.stack([image_decoding.decode(open(p, 'rb').read(), captioner.input_spec) for p in paths])
    seconds = measure.interleave({'caption': measure.timed(lambda: captioner.caption(crops))}, repeats)['caption']
    return measure.per_second(seconds, len(paths))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--flickr8k', default=os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data',
                                                           'flickr8k'))
    parser.add_argument('--workdir', default='/tmp/img2txt-flickr8k')
    parser.add_argument('--only', nargs='+', choices=sorted(CANDIDATES), default=sorted(CANDIDATES))
    parser.add_argument('--seeds', type=int, default=1)
    parser.add_argument('--epochs', type=int, default=recipe.DEFAULT_CROSS_ENTROPY_EPOCHS)
    parser.add_argument('--self-critical-epochs', type=int, default=recipe.DEFAULT_SELF_CRITICAL_EPOCHS)
    parser.add_argument('--repeats', type=int, default=measure.REPEATS)
    args = parser.parse_args()
    recipe.check_folder(args.flickr8k)
    with open(os.path.join(args.flickr8k, flickr8k.CAPTIONS_FILE), encoding='utf-8') as f:
        val = [os.path.join(args.flickr8k, flickr8k.IMAGES_DIR, image['filename'])
               for image in json.load(f)['images'] if image['split'] == recipe.VALIDATION_SPLIT][:PHOTOS]

    results = {}
    for label in args.only:
        for seed in range(args.seeds):
            for name, scores, minutes, export_dir in run_candidate(args, label, seed):
                entry = results.setdefault(f'{label} {name}', {'scores': [], 'minutes': [], 'rate': []})
                entry['scores'].append(scores)
                entry['minutes'].append(minutes)
                if seed == 0:
                    entry['rate'] = captions_per_second(export_dir, val, args.repeats)

    columns = list(evaluation.METRICS)
    width = max(len(label) for label in results)
    print(f'\nFlickr8k val, median of {args.seeds} seed(s); the photos are squashed to 224x224 in the shared copy')
    print(f'{"":<{width}}  ' + '  '.join(f'{c:>8}' for c in columns) + '  CIDEr-D range   minutes  captions/s')
    for label, entry in results.items():
        medians = [statistics.median(s[c] if isinstance(s[c], float) else float('nan') for s in entry['scores'])
                   for c in columns]
        ciders = [s[evaluation.CIDER_D] for s in entry['scores']]
        minutes = [m for m in entry['minutes'] if m is not None]
        print(f'{label:<{width}}  ' + '  '.join(f'{m:>8.3f}' for m in medians)
              + f'  {min(ciders):.3f}-{max(ciders):.3f}'
              + (f'  {statistics.median(minutes):>8.1f}' if minutes else f'  {"-":>8}')
              + f'  {measure.summary(entry["rate"])}')


if __name__ == '__main__':
    main()
