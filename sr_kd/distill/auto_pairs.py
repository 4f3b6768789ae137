"""``distill.pairs: auto``: tap pairs for any student and teacher, found by running both once.

The body's blocks are the repeated modules whose outputs are N x C x H x W at the input's spatial size:
modules are grouped by name pattern (digits as '#': ``IMDB#``, ``body.#``, ``layers.#.conv``) and class,
groups nested inside another group's members are dropped (a block, not its convolutions), members keep
the group's most common width (not the upsampler's conv), and the largest group wins (ties: the one that
runs later, e.g. Compact's activations after its convs). N pairs are then taken at matching relative
depth, as Gao et al. tap the end of each equal part of both networks: student block ``floor(k S / N)``
(the last one at k = N) with teacher block ``round(s T / S)``. For IMDN 32x4 and 64x6 that is
[IMDB1, IMDB2], [IMDB2, IMDB3], [IMDB4, IMDB6], the pairs options/imdn_kd.yml lists.
"""
import math
import re
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from sr_kd.errors import SRKDError
from sr_kd.rules import is_int

DEFAULT_PAIRS = 3


def _outputs(net, x):
    """{module name: (order of its last call, output shape)} for modules whose output (or its first
    element) is a 4-D tensor; one forward under no_grad, hooks removed after."""
    seen, handles = {}, []
    for name, module in net.named_modules():
        if not name:
            continue

        def hook(module, args, out, name=name):
            out = out[0] if isinstance(out, (tuple, list)) and out else out
            if torch.is_tensor(out) and out.dim() == 4:
                seen[name] = (len(seen), tuple(out.shape))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def body_blocks(net: nn.Module, x: torch.Tensor) -> List[str]:
    """Names of the body's blocks of ``net``, in the order they run, on input ``x``."""
    outputs = _outputs(net, x)
    modules = dict(net.named_modules())
    groups = {}
    for name, (_, shape) in outputs.items():
        if shape[2:] == tuple(x.shape[2:]):
            key = (re.sub(r'\d+', '#', name), type(modules[name]).__name__)
            groups.setdefault(key, []).append(name)
    names = {n for members in groups.values() if len(members) >= 2 for n in members}

    def nested(name):
        parts = name.split('.')
        return any('.'.join(parts[:i]) in names for i in range(1, len(parts)))

    best, best_key = [], None
    for key, members in groups.items():
        if all(nested(n) for n in members):
            continue
        width = Counter(outputs[n][1][1] for n in members).most_common(1)[0][0]
        members = sorted((n for n in members if outputs[n][1][1] == width), key=lambda n: outputs[n][0])
        rank = (len(members), max(outputs[n][0] for n in members))
        if len(members) >= 2 and (best_key is None or rank > best_key):
            best, best_key = members, rank
    return best


def pick_pairs(student_blocks: Sequence[str], teacher_blocks: Sequence[str],
               n: int = DEFAULT_PAIRS) -> List[List[str]]:
    """N (student, teacher) pairs at matching relative depth."""
    s_len, t_len = len(student_blocks), len(teacher_blocks)
    if n > s_len:
        raise SRKDError(f'distill.num_pairs: {n}, but the student has {s_len} blocks ({student_blocks[0]} ... '
                        f'{student_blocks[-1]}) to pair: at most {s_len}')
    pairs = []
    for k in range(1, n + 1):
        s = s_len if k == n else max(1, (k * s_len) // n)
        t = min(t_len, max(1, math.floor(s * t_len / s_len + 0.5)))
        pairs.append([student_blocks[s - 1], teacher_blocks[t - 1]])
    return pairs


def auto_pairs(student: nn.Module, teacher: nn.Module, in_channels: int = 3, size: int = 32,
               n: int = DEFAULT_PAIRS) -> List[List[str]]:
    """``pairs: auto`` for two networks: a random ``size`` x ``size`` probe (own generator), the body's
    blocks of each, N pairs at matching relative depth. One line when a network has no such blocks."""
    if not is_int(n) or n < 1:
        raise SRKDError(f'distill.num_pairs must be a whole number >= 1, not {n!r}')
    x = torch.rand(1, in_channels, size, size, generator=torch.Generator().manual_seed(0))
    found = {}
    for role, net in (('student', student), ('teacher', teacher)):
        device = next(net.parameters()).device
        was_training = net.training
        net.eval()
        try:
            found[role] = body_blocks(net, x.to(device))
        finally:
            net.train(was_training)
        if not found[role]:
            raise SRKDError(f'distill.pairs: auto found no repeated blocks with N x C x {size} x {size} outputs in '
                            f'the {role} ({type(net).__name__}); list the pairs by module name instead')
    return pick_pairs(found['student'], found['teacher'], n)


def write_pairs(opt_file: Optional[str], pairs: Sequence[Sequence[str]]) -> bool:
    """Replace ``pairs: auto`` in the experiment's copy of the option file by the chosen pairs."""
    import os

    from sr_kd.atomic import atomic_write_text
    if not opt_file or not os.path.isfile(opt_file):
        return False
    with open(opt_file) as f:
        text = f.read()
    flow = '[' + ', '.join(f'[{s}, {t}]' for s, t in pairs) + ']'
    new, count = re.subn(r'^(\s*pairs:\s*)auto\b[^\n]*$', lambda m: f'{m.group(1)}{flow}  # chosen by pairs: auto',
                         text, count=1, flags=re.M)
    if not count:
        new = text.rstrip('\n') + f'\n# distill.pairs (chosen by pairs: auto): {flow}\n'
    atomic_write_text(opt_file, new)
    return True


def resolve(opt: Dict[str, Any], student: nn.Module, teacher: nn.Module) -> Optional[List[List[str]]]:
    """Turn ``distill.pairs: auto`` into pairs in ``opt`` (in place), log them and write them into the
    experiment's copy of the option file; a no-op for listed pairs. ``distill.num_pairs``: N (default 3)."""
    import glob
    import os

    from basicsr.utils import get_root_logger
    d_opt = opt.get('distill') or {}
    if d_opt.get('pairs') != 'auto':
        return None
    size = max((opt['datasets'].get('train') or {}).get('gt_size', 64) // opt.get('scale', 1), 8)
    pairs = auto_pairs(student, teacher, opt['network_g'].get('num_in_ch', 3), size,
                       d_opt.get('num_pairs', DEFAULT_PAIRS))
    d_opt['pairs'] = pairs
    get_root_logger().info('distill.pairs: auto chose (student, teacher): '
                           + ', '.join(f'[{s}, {t}]' for s, t in pairs))
    root = (opt.get('path') or {}).get('experiments_root')
    if root and opt.get('rank', 0) == 0:
        for path in glob.glob(os.path.join(root, '*.yml')):
            with open(path) as f:
                if re.search(r'^\s*pairs:\s*auto\b', f.read(), flags=re.M):
                    write_pairs(path, pairs)
    return pairs
