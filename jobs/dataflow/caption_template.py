"""The Flex Template's entry point: the launcher runs this file with the template's parameters as flags.

It is ``img2txt caption`` with those parameters (``jobs.caption.template_args``);
``FLEX_TEMPLATE_PYTHON_PY_FILE``, set in the Dockerfile, makes the pipeline
submit the job without waiting for it, as a template launch must.
"""
import sys

from img2txt.jobs import caption, cli

if __name__ == '__main__':
    sys.exit(cli.main(caption.template_args(sys.argv[1:])))
