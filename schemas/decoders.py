"""The caption decoders' names, as files record them.

A name is the ``decoder`` field of a model dir's config.json
(``training_run.DECODER``) and of an export's captioner.json
(``captioner.CONFIG_DECODER``), and the prefix of a captioner's model id
(``show_and_tell@...``). What each name builds, reads and exports is
``model.networks.decoders``' table, the one place that knows.
"""

SHOW_AND_TELL = 'show_and_tell'   # Show and Tell on the pooled feature vector (model.networks.show_and_tell)
ATTENTION = 'attention'           # soft attention over the encoder's spatial map (model.networks.attention)
NAMES = (SHOW_AND_TELL, ATTENTION)

# The decoder of a config.json or captioner.json written before the field existed.
UNNAMED = SHOW_AND_TELL


def of(config, field):
    """The decoder name a config document records under ``field`` (``UNNAMED`` when it has none)."""
    return config.get(field, UNNAMED)
