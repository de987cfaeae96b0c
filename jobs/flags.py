"""Config dataclasses ↔ command-line flags, one to one.

Every job's configuration is a dataclass whose fields carry their help text in
``metadata['help']`` (and optionally ``metadata['choices']``); ``add_arguments``
turns each field into ``--field-name`` and ``from_args`` builds the dataclass
back, so a flag and its config field can never drift apart.
"""
import argparse
import dataclasses
import types
import typing


def add_arguments(parser, config_cls, exclude=()):
    """Adds one flag per field of ``config_cls`` (except ``exclude``) to ``parser``."""
    for field in dataclasses.fields(config_cls):
        if field.name in exclude:
            continue
        kwargs = {'dest': field.name, 'help': field.metadata.get('help', '')}
        if typing.get_origin(field.type) is list:
            # A list field is a repeatable flag: --input A --input B.
            kwargs.update(action='append', type=typing.get_args(field.type)[0],
                          metavar=field.metadata.get('metavar', field.name.upper()), default=None)
            kwargs['help'] += ' (repeatable)'
            parser.add_argument('--' + field.name.replace('_', '-'), **kwargs)
            continue
        kind, optional = _scalar_type(field.type)
        if 'choices' in field.metadata:
            kwargs['choices'] = field.metadata['choices']
        if field.default is not dataclasses.MISSING:
            kwargs['default'] = field.default
            kwargs['help'] += ' (default: %(default)s)'
        elif field.default_factory is not dataclasses.MISSING:
            kwargs['default'] = field.default_factory()
        else:
            kwargs['required'] = True
        if kind is bool:
            kwargs['action'] = argparse.BooleanOptionalAction
        else:
            kwargs['type'] = kind
            kwargs['metavar'] = field.metadata.get('metavar', field.name.upper())
        if optional and kind is not bool:
            kwargs['type'] = _optional(kind)
            kwargs['help'] += '; "none" for no value'
        parser.add_argument('--' + field.name.replace('_', '-'), **kwargs)


def from_args(config_cls, args, **overrides):
    """Builds ``config_cls`` from parsed ``args``; ``overrides`` supply excluded fields."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if hasattr(args, f.name)}
    for f in dataclasses.fields(config_cls):
        if typing.get_origin(f.type) is list and values.get(f.name) is None:
            values[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else []
    values.update(overrides)
    return config_cls(**values)


def _scalar_type(annotation):
    """(int|float|str|bool, is_optional) for a field annotation such as ``int | None``."""
    if isinstance(annotation, (typing._UnionGenericAlias, types.UnionType)):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f'unsupported flag type {annotation}')
        return inner[0], True
    if annotation not in (int, float, str, bool):
        raise TypeError(f'unsupported flag type {annotation}')
    return annotation, False


def _optional(kind):
    def parse(text):
        return None if text.lower() == 'none' else kind(text)
    parse.__name__ = kind.__name__
    return parse
