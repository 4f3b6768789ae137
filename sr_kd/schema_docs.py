"""``docs/options.md`` and ``docs/options.schema.json``, generated from the schema (``sr_kd.schema``) so the
documented keys are the checked ones: ``python -m sr_kd.schema_docs`` rewrites both; a test fails when
either is out of date.
"""
import json
import os
import typing

from pydantic import BaseModel

from sr_kd.atomic import atomic_write_text

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs')
MARKDOWN = os.path.join(DOCS, 'options.md')
JSON_SCHEMA = os.path.join(DOCS, 'options.schema.json')


def _type(annotation) -> str:
    """A short, readable type: 'int or float', 'list of str', "'stop' or 'skip'"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is typing.Union and all(isinstance(a, type) and issubclass(a, BaseModel) for a in args):
        return 'a term (below)'
    if origin is typing.Union:
        names = [_type(a) for a in args if a is not type(None)]
        return ' or '.join(dict.fromkeys(names)) + (' or ~' if type(None) in args else '')
    if origin is typing.Literal:
        return ' or '.join(repr(a).lower() if isinstance(a, bool) else repr(a) for a in args)
    if origin in (list, typing.List):
        return f'list of {_type(args[0])}' if args else 'list'
    if origin in (dict, typing.Dict):
        return 'mapping'
    if annotation is typing.Any:
        return 'any'
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):  # a small mapping: its keys
        return '{' + ', '.join(annotation.model_fields) + '}'
    return getattr(annotation, '__name__', str(annotation))


def _default(field) -> str:
    if field.is_required():
        return 'required'
    value = field.default
    return '~' if value is None else f'`{json.dumps(value)}`'


def _table(model, skip=()) -> list:
    rows = ['| key | type | default | what it does |', '| --- | --- | --- | --- |']
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        what = (field.description or '').replace('|', '\\|')
        rows.append(f'| `{name}` | {_type(field.annotation).replace("|", "/")} | {_default(field)} | {what} |')
    return rows


def markdown() -> str:
    from sr_kd import schema

    top = schema.option_file_model()
    train = typing.get_args(top.model_fields['train'].annotation)[0]
    out = ['# Option-file keys sr_kd adds to BasicSR', '',
           'Generated from `sr_kd/schema.py` by `python -m sr_kd.schema_docs`; do not edit by hand. Every key below '
           'is checked before a run starts (unknown keys are refused with the nearest known ones, types strictly: '
           "`'2'` is not `2`). BasicSR's own keys (`train.optim_g`, `train.scheduler`, `network_g`, ...) are "
           "BasicSR's and pass through.", '',
           '**In your editor:** `docs/options.schema.json` is the JSON schema of an option file. With the YAML '
           'language server (VS Code\'s YAML extension, Neovim, Helix), put this first line in an option file:', '',
           '    # yaml-language-server: $schema=../docs/options.schema.json', '',
           '(the path is relative to the option file), or map `options/**/*.yml` to it in `yaml.schemas`.', '']
    sections = [('Top level', top, ('network_t', 'distill', 'datasets', 'path', 'train', 'logger', 'val')),
                ('`distill`', typing.get_args(top.model_fields['distill'].annotation)[0], ()),
                ('`network_t`', schema.NetworkT, ()),
                ('`path` (the teacher)', schema.Path, ()),
                ('`train`', train, ()),
                ('`logger`', schema.Logger, ()),
                ('`val`', schema.Val, ())]
    for title, model, skip in sections:
        out += [f'## {title}', '', *_table(model, skip), '']
    for model in (schema.HROnlyDataset, schema.PlainImageDataset):
        out += [f'## `datasets.*` of type `{model.__name__}`', '', (model.__doc__ or '').strip(), '',
                *_table(model, ('type',)), '']
    out += ['## `train.distill_opts`: the terms', '',
            'Each item has a `type` (below), and optionally `name` and `fade`; the other keys are the loss\'s own.', '']
    for name, cls in schema.distill_losses().items():
        model = schema.term_model(name, cls)
        example = schema.term_example(cls)
        out += [f'### `{name}`', '', (model.__doc__ or '').strip(), '', *_table(model, ('type',)), '']
        if example:
            out += ['```yaml', f'  - {example[0]}', '```', '']
    return '\n'.join(out).rstrip('\n') + '\n'


def json_text() -> str:
    from sr_kd import schema
    return json.dumps(schema.json_schema(), indent=1, sort_keys=True) + '\n'


def main() -> None:
    atomic_write_text(MARKDOWN, markdown())
    atomic_write_text(JSON_SCHEMA, json_text())
    print(MARKDOWN)
    print(JSON_SCHEMA)


if __name__ == '__main__':
    main()
