"""The one YAML reader of option files: a safe loader, so an option file can never run code.

PyYAML's full loader (what basicsr's ``parse_options`` uses) builds Python objects from tags such as
``!!python/object/apply:os.system``: an option file downloaded from a paper's repository could run any
command before the first check. This loader knows only YAML's own types (BasicSR's ``!!float`` included)
and keeps mappings ordered as basicsr's ``ordered_yaml`` does; any other tag is refused, naming the line.
It also refuses what a safe loader still accepts but nobody means: a key given twice in one mapping
(PyYAML keeps the last one silently), a file over 1 MiB, and aliases whose expansion is out of
proportion (a 2 KB "billion laughs" file is tiny as Python objects, but basicsr's option dump writes it
out expanded: hundreds of MB of log and a MemoryError).
Used by ``sr_kd.options.load_yaml`` and, through ``compat_identical``, by basicsr's ``parse_options``.
Deliberately imports nothing from sr_kd (it is loaded before basicsr is patched).
"""
import os
from collections import OrderedDict
from typing import IO, Any, Optional, Union

import yaml

_Base = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


MAX_BYTES = 1 << 20
MAX_EXPANDED_NODES = 100_000  # an option file has a few hundred; aliases may repeat it, not explode it


class Refused(yaml.YAMLError):
    """An option file the loader will not read; the message is one line."""


class RefusedTag(yaml.constructor.ConstructorError):
    """A tag that would build a Python object (or any tag YAML does not define)."""

    def __init__(self, node: yaml.Node):
        self.tag = node.tag.replace('tag:yaml.org,2002:', '!!')
        self.line = node.start_mark.line + 1
        super().__init__(None, None, f'line {self.line}: the tag {self.tag} is refused: an option file may hold '
                                     'only plain values (no Python objects, nothing that runs code)',
                         node.start_mark)

    def __str__(self):  # one line, without PyYAML's snippet of the file
        return self.problem


class SafeOrderedLoader(_Base):
    """yaml.SafeLoader whose mappings are OrderedDicts (as basicsr's loader makes them), refusing large
    files and alias bombs before anything is built."""

    def __init__(self, stream: Union[str, bytes, IO]):
        size = len(stream) if isinstance(stream, (str, bytes)) else _file_size(stream)
        if size is not None and size > MAX_BYTES:
            raise Refused(f'the file is {size / 2**20:.1f} MiB; an option file is a few KB (at most 1 MiB)')
        super().__init__(stream)

    def get_single_node(self) -> Optional[yaml.Node]:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _file_size(stream):
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


def _check_expansion(root):
    """Count the nodes the document has once every alias is written out (what a dump of it writes)."""
    sizes = {}

    def expanded(node):
        key = id(node)
        if key not in sizes:
            sizes[key] = 0  # a recursive alias counts once, not forever
            children = node.value if isinstance(node, yaml.SequenceNode) else (
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
            sizes[key] = min(1 + sum(expanded(c) for c in children), MAX_EXPANDED_NODES + 1)
        return sizes[key]

    if expanded(root) > MAX_EXPANDED_NODES:
        raise Refused(f'its aliases expand to more than {MAX_EXPANDED_NODES:,} values (an alias bomb?); '
                      'write the repeated parts out or use fewer nested aliases')


def _refuse_duplicate_keys(node):
    seen = {}
    for key, _ in node.value:
        if key.tag == 'tag:yaml.org,2002:merge' or not isinstance(key, yaml.ScalarNode):
            continue  # keys from a merge (<<: *base) may be overridden: that is what a merge is for
        line = key.start_mark.line + 1
        if key.value in seen:
            raise Refused(f'line {line}: the key {key.value!r} is given twice in one mapping (first on line '
                          f'{seen[key.value]}); YAML would keep only the last one: remove one')
        seen[key.value] = line


def _ordered_mapping(loader, node):
    _refuse_duplicate_keys(node)
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


def _refuse(loader, suffix_or_node, node=None):
    raise RefusedTag(node if node is not None else suffix_or_node)


SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _ordered_mapping)
SafeOrderedLoader.add_constructor(None, _refuse)
SafeOrderedLoader.add_multi_constructor('tag:yaml.org,2002:python/', _refuse)
SafeOrderedLoader.add_multi_constructor('!', _refuse)


def load(stream: Union[str, bytes, IO]) -> Any:
    """The document in ``stream`` (text or file) with the safe, ordered loader."""
    return yaml.load(stream, Loader=SafeOrderedLoader)  # noqa: S506 - SafeOrderedLoader is a SafeLoader
