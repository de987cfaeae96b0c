"""Beam flags that build a Dataflow job graph offline; pipelines/beam_options.py explains each value."""

DATAFLOW_DRY_RUN = ['--runner=DataflowRunner', '--dry_run=True', '--no_auth', '--project=img2txt-test',
                    '--region=us-central1', '--temp_location=gs://img2txt-test/tmp',
                    # Skips the stager's pip freeze, seconds of work a dry run does not need.
                    '--experiments=disable_logging_submission_environment']
