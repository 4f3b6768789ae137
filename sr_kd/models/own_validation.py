"""Validation behaviour of sr_kd's own model classes (not of BasicSR's: docs/design.md, "The compat rule").

- The RNGs are left as validation found them (its data loader draws a seed from torch's RNG), so the
  training trajectory does not depend on val_freq and a resumed run matches an uninterrupted one.
- basicsr's loop leaves ``current_iter`` past total_iter (one step per remaining epoch) and then validates
  once more: the last table read "@ 502 iter" after 500 iterations and repeated the one at 500. The
  iteration is clamped to total_iter, and a dataset already validated at it is not run again (keyed by
  the loader itself, so two loaders whose datasets share a name are both validated).
"""
from typing import TYPE_CHECKING, Any, Union

from sr_kd.rng import rng_state, set_rng_state

if TYPE_CHECKING:
    from torch.utils.data import DataLoader


class OwnValidation:
    """Mixin placed before a BasicSR model class: ``class M(OwnValidation, SRModel)``."""

    def validation(self, dataloader: 'DataLoader', current_iter: Union[int, str], *args: Any, **kwargs: Any) -> None:
        if self.is_train and isinstance(current_iter, int):  # test.py passes the run's name instead
            total = self.opt.get('train', {}).get('total_iter')
            if isinstance(total, int):
                current_iter = min(current_iter, total)
            done = self.__dict__.setdefault('_validated', set())
            key = (id(dataloader), current_iter)
            if key in done:
                return None
            done.add(key)
        state = rng_state()
        try:
            return super().validation(dataloader, current_iter, *args, **kwargs)
        finally:
            set_rng_state(state)
