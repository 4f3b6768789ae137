"""Feature taps: forward hooks that record named modules' outputs (and inputs) during a normal forward.

Works for any architecture: a tap is a module name as ``named_modules()`` gives it ("IMDB2",
"body.3.conv"). Records are cleared every step, so no feature stays alive across steps.
"""
from typing import TYPE_CHECKING, Iterable, List, Sequence

from sr_kd.errors import SRKDError, close_matches

if TYPE_CHECKING:
    from torch import nn


def check_module_names(net: 'nn.Module', names: Sequence[str], role: str) -> List['nn.Module']:
    """Raise one clear line for names ``net`` does not have, listing what exists."""
    have = dict(net.named_modules())
    for name in names:
        if name not in have:
            listing = ', '.join(n for n in have if n and n.count('.') == 0)
            raise SRKDError(f'{role} network has no module {name!r}{close_matches(name, have)}; '
                            f'top-level modules: {listing}')
    return [have[n] for n in names]


class FeatureTaps:
    """Hooks on ``names`` of ``net``: after a forward, ``outputs[i]`` (and ``inputs[i]``) hold the tensors."""

    def __init__(self, net: 'nn.Module', names: Iterable[str], record_inputs: bool = False, role: str = 'student'):
        self.names = list(names)
        self.record_inputs = record_inputs
        self.outputs = [None] * len(self.names)
        self.inputs = [None] * len(self.names)
        self._handles = [m.register_forward_hook(self._hook(i))
                         for i, m in enumerate(check_module_names(net, self.names, role))]

    def _hook(self, i):
        def hook(module, args, output):
            self.outputs[i] = output[0] if isinstance(output, (tuple, list)) else output
            if self.record_inputs:
                self.inputs[i] = args[0] if args else None
        return hook

    def clear(self) -> None:
        self.outputs = [None] * len(self.names)
        self.inputs = [None] * len(self.names)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.clear()
