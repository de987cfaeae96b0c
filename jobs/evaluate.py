"""``img2txt evaluate``: score an exported captioner on a dataset split with the COCO caption metrics."""
from img2txt.jobs import flags
from img2txt.pipelines import evaluate
from img2txt.schemas import evaluation


def register(subparsers):
    """Adds the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        'evaluate', help='score a captioner on a split: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, per subset',
        description=evaluate.__doc__.split('\n\n')[0])
    flags.add_arguments(parser, evaluate.EvaluateConfig)
    parser.set_defaults(run=run, beam_flags=True)


def run(args, beam_args):
    """Evaluates and prints the metrics table and where the files are."""
    document = evaluate.run_config(flags.from_args(evaluate.EvaluateConfig, args), beam_args)
    print(evaluate.table(document))
    if document[evaluation.NOT_SCORED]:
        print(f'{document[evaluation.NOT_SCORED]} images of the split could not be captioned and are not scored '
              f'(see {evaluation.METRICS_FILE})')
    print(f'-> {args.output}/{evaluation.METRICS_FILE}, {args.output}/{evaluation.IMAGES_FILE}')
    return 0
