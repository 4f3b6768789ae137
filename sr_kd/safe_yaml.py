"""The one YAML reader of option files: a safe loader, so an option file can never run code.

PyYAML's full loader (what basicsr's ``parse_options`` uses) builds Python objects from tags such as
``!!python/object/apply:os.system``: an option file downloaded from a paper's repository could run any
command before the first check. This loader knows only YAML's own types (BasicSR's ``!!float`` included)
and keeps mappings ordered as basicsr's ``ordered_yaml`` does; any other tag is refused, naming the line.
Used by ``sr_kd.options.load_yaml`` and, through ``compat_identical``, by basicsr's ``parse_options``.
Deliberately imports nothing from sr_kd (it is loaded before basicsr is patched).
"""
from collections import OrderedDict

import yaml

_Base = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


class RefusedTag(yaml.constructor.ConstructorError):
    """A tag that would build a Python object (or any tag YAML does not define)."""

    def __init__(self, node):
        self.tag = node.tag.replace('tag:yaml.org,2002:', '!!')
        self.line = node.start_mark.line + 1
        super().__init__(None, None, f'line {self.line}: the tag {self.tag} is refused: an option file may hold '
                                     'only plain values (no Python objects, nothing that runs code)',
                         node.start_mark)

    def __str__(self):  # one line, without PyYAML's snippet of the file
        return self.problem


class SafeOrderedLoader(_Base):
    """yaml.SafeLoader whose mappings are OrderedDicts (as basicsr's loader makes them)."""


def _ordered_mapping(loader, node):
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


def _refuse(loader, suffix_or_node, node=None):
    raise RefusedTag(node if node is not None else suffix_or_node)


SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _ordered_mapping)
SafeOrderedLoader.add_constructor(None, _refuse)
SafeOrderedLoader.add_multi_constructor('tag:yaml.org,2002:python/', _refuse)
SafeOrderedLoader.add_multi_constructor('!', _refuse)


def load(stream):
    """The document in ``stream`` (text or file) with the safe, ordered loader."""
    return yaml.load(stream, Loader=SafeOrderedLoader)  # noqa: S506 - SafeOrderedLoader is a SafeLoader
