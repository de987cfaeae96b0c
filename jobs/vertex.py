"""A Vertex AI custom job that runs ``img2txt train`` on a cloud GPU.

``custom_job`` builds the CustomJob resource as Vertex AI's REST API takes it
(``projects.locations.customJobs.create``); nothing here talks to Google
Cloud. From the command line, print one and submit it with gcloud::

    python -m img2txt.jobs.vertex --data gs://b/coco --model-dir gs://b/runs/1 \\
        --package-uri gs://b/dist/img2txt-0.1.0.tar.gz --format gcloud --batch-size 64 > job.yaml
    gcloud ai custom-jobs create --region us-central1 --display-name img2txt-train --config job.yaml

Flags this module does not know are ``img2txt train`` flags, checked here
and passed on. The code reaches the machine one of two ways:

- a source distribution of this repository (``python setup.py sdist``,
  copied to gs://) that Vertex installs into its prebuilt TensorFlow GPU
  image and runs as ``python -m img2txt.jobs.cli train ...``; or
- ``--image-uri`` alone: a container image of your own with img2txt
  installed, run as ``img2txt train ...``.

The job restarts when its worker does: ``img2txt train`` resumes from the
model dir's latest checkpoint, and a preempted VM's SIGTERM stops it with one.
"""
import argparse
import contextlib
import io
import json
import sys

import yaml

from img2txt.jobs import train

EXECUTOR_IMAGE = 'us-docker.pkg.dev/vertex-ai/training/tf-gpu.2-17.py310:latest'
# G2 machines come with NVIDIA L4 GPUs: g2-standard-8 has one.
MACHINE_TYPE = 'g2-standard-8'
ACCELERATOR_TYPE = 'NVIDIA_L4'
FORMATS = ('json', 'gcloud')


def custom_job(data, model_dir, train_args=(), *, package_uris=(), image_uri=None, machine_type=MACHINE_TYPE,
               accelerator_type=ACCELERATOR_TYPE, accelerator_count=1, display_name='img2txt-train',
               service_account=None):
    """The CustomJob resource (REST JSON, as a dict) of one ``img2txt train`` run.

    Args:
      data: the preprocess output, on gs://.
      model_dir: the training output, on gs://.
      train_args: further ``img2txt train`` flags, e.g. ``['--batch-size', '64']``.
      package_uris: gs:// source distributions of img2txt to run on
        ``image_uri`` (default ``EXECUTOR_IMAGE``); empty: ``image_uri`` has
        img2txt installed.
      image_uri: the container image.
      machine_type, accelerator_type, accelerator_count: the worker; with
        several GPUs training mirrors the model on each.
      display_name: the job's name in the console.
      service_account: the account the job runs as; default: Vertex AI's.

    Raises:
      ValueError: a path is not on gs://, a train flag is wrong, or there is
        neither a package nor an image.
    """
    for name, path in (('data', data), ('model_dir', model_dir)):
        if not path.startswith('gs://'):
            raise ValueError(f'{name} must be on gs:// for a Vertex AI job to reach it, got {path!r}')
    args = ['train', '--data', data, '--model-dir', model_dir, *train_args]
    _check_train_args(args)
    worker = {
        'machineSpec': {'machineType': machine_type, 'acceleratorType': accelerator_type,
                        'acceleratorCount': accelerator_count},
        'replicaCount': '1',
    }
    if package_uris:
        worker['pythonPackageSpec'] = {'executorImageUri': image_uri or EXECUTOR_IMAGE,
                                       'packageUris': list(package_uris), 'pythonModule': 'img2txt.jobs.cli',
                                       'args': args}
    elif image_uri:
        worker['containerSpec'] = {'imageUri': image_uri, 'command': ['img2txt'], 'args': args}
    else:
        raise ValueError('give package_uris (run on the prebuilt TensorFlow image) or an image_uri with img2txt '
                         'installed')
    job_spec = {'workerPoolSpecs': [worker], 'scheduling': {'restartJobOnWorkerRestart': True}}
    if service_account:
        job_spec['serviceAccount'] = service_account
    return {'displayName': display_name, 'jobSpec': job_spec}


def _check_train_args(args):
    """Raises ValueError unless ``args`` parse as an ``img2txt train`` command line."""
    parser = argparse.ArgumentParser(prog='img2txt')
    train.register(parser.add_subparsers())
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parser.parse_args(args)
    except SystemExit:
        message = errors.getvalue().strip().splitlines()[-1]
        raise ValueError(f'bad img2txt train flags: {message}') from None


def main(argv=None):
    """Prints the custom job of a command line: ``--format json`` for the REST API, ``gcloud`` for ``--config``."""
    parser = argparse.ArgumentParser(
        prog='python -m img2txt.jobs.vertex', description=__doc__.split('\n\n')[0],
        epilog='Other flags are img2txt train flags (e.g. --batch-size 64 --optimizer adam).')
    parser.add_argument('--data', required=True, help='preprocess output on gs://')
    parser.add_argument('--model-dir', required=True, help='training output on gs://')
    parser.add_argument('--package-uri', action='append', default=[], dest='package_uris',
                        help='gs:// source distribution of img2txt (repeatable)')
    parser.add_argument('--image-uri', help=f'container image (default with --package-uri: {EXECUTOR_IMAGE})')
    parser.add_argument('--machine-type', default=MACHINE_TYPE, help='(default: %(default)s)')
    parser.add_argument('--accelerator-type', default=ACCELERATOR_TYPE, help='(default: %(default)s)')
    parser.add_argument('--accelerator-count', type=int, default=1, help='(default: %(default)s)')
    parser.add_argument('--display-name', default='img2txt-train', help='(default: %(default)s)')
    parser.add_argument('--service-account', help='account the job runs as (default: Vertex AI\'s)')
    parser.add_argument('--format', choices=FORMATS, default='json',
                        help='json: the CustomJob for the REST API; gcloud: its jobSpec as YAML for '
                             '"gcloud ai custom-jobs create --config" (default: %(default)s)')
    args, train_args = parser.parse_known_args(argv)
    try:
        job = custom_job(args.data, args.model_dir, train_args, package_uris=args.package_uris,
                         image_uri=args.image_uri, machine_type=args.machine_type,
                         accelerator_type=args.accelerator_type, accelerator_count=args.accelerator_count,
                         display_name=args.display_name, service_account=args.service_account)
    except ValueError as e:
        parser.error(str(e))
    if args.format == 'json':
        print(json.dumps(job, indent=2))
    else:
        print(yaml.safe_dump(job['jobSpec'], sort_keys=False), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
