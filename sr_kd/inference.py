"""Forward passes for whole images, tiles, size multiples and IMDN_AS's adaptive cropping, in one place.

Evaluation, validation, the ``sr-kd upscale`` CLI and the benchmarks all call ``upscale`` (``forward`` under
inference mode and autocast), so a speed or memory fix here reaches every user of a model. What differs
between architectures comes from their ``ModelInfo`` (sr_kd.archs.description), never from a name test.
"""
import contextlib
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Optional, Union

import torch

if TYPE_CHECKING:
    from sr_kd.archs.description import ExactTiling, ModelInfo

# The convolutions see 4 * num_modules + 3 LR pixels around each output pixel (27 for 64x6): a pad of 32
# covers that (with attention off, tiles then equal the whole image to 4e-5). What remains is IMDN's channel
# attention, which pools over whatever it is shown; larger pads narrow that gap only slowly, at quadratic
# cost, and ``exact`` closes it (docs/performance.md, "Tiling seams"). Other archs' receptive fields differ.
DEFAULT_TILE_PAD = 32
AUTOCAST_DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}  # precision -> autocast dtype


def adaptive_crop_forward(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, overlap: int = 32,
                          multiple: int = 4) -> torch.Tensor:
    """IMDN_AS's adaptive cropping (Hui et al. 2019): four overlapping corner patches of about half the
    image plus ``overlap``, each a multiple of ``multiple`` on both sides, run as one batch; each output
    quadrant is taken from its own patch. The model must keep the input size (IMDN_AS does)."""
    _, _, h, w = x.shape
    hh, hw = h // 2, w // 2
    ph, pw = hh + overlap - (hh + overlap) % multiple, hw + overlap - (hw + overlap) % multiple
    if ph > h or pw > w:
        return _padded_forward(model, x, multiple)
    patches = torch.cat([x[:, :, :ph, :pw], x[:, :, :ph, w - pw:], x[:, :, h - ph:, :pw], x[:, :, h - ph:, w - pw:]])
    o = model(patches)
    s = o.shape[2] // ph  # 1 for IMDN_AS; a fixed-scale model works too
    n = x.shape[0]
    out = x.new_zeros(n, o.shape[1], h * s, w * s, dtype=o.dtype)
    out[:, :, :hh * s, :hw * s] = o[0 * n:1 * n, :, :hh * s, :hw * s]
    out[:, :, :hh * s, hw * s:] = o[1 * n:2 * n, :, :hh * s, (pw - w + hw) * s:]
    out[:, :, hh * s:, :hw * s] = o[2 * n:3 * n, :, (ph - h + hh) * s:, :hw * s]
    out[:, :, hh * s:, hw * s:] = o[3 * n:4 * n, :, (ph - h + hh) * s:, (pw - w + hw) * s:]
    return out


def _padded_forward(model, x, multiple):
    """Pad the bottom and right edges to a multiple (reflect, as spandrel pads; replicate past what reflect
    allows), run, crop the output back."""
    _, _, h, w = x.shape
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        rh, rw = min(ph, h - 1), min(pw, w - 1)
        x = torch.nn.functional.pad(x, (0, rw, 0, rh), mode='reflect') if rh or rw else x
        x = torch.nn.functional.pad(x, (0, pw - rw, 0, ph - rh), mode='replicate') if ph > rh or pw > rw else x
    o = model(x)
    s = o.shape[2] // (h + ph)
    return o[:, :, :h * s, :w * s]


def _window_forward(model, x, multiple=1, adaptive=False):
    """One forward on a window: IMDN_AS (``adaptive``) crops adaptively when a side is not a multiple of 4,
    as the official test script does; other models are padded to their size ``multiple``."""
    if x.shape[2] % multiple or x.shape[3] % multiple:
        return adaptive_crop_forward(model, x, multiple=multiple) if adaptive else _padded_forward(model, x, multiple)
    return model(x)


def _cores(length, tile, multiple):
    """Equal cores of at most ``tile`` (a multiple of ``multiple``) that cover ``length``: a 720-pixel side
    with tile 512 gets two cores of 360, not 512 + 208, so no window is mostly wasted."""
    n = -(-length // tile)
    size = -(-length // n)
    size = min(-(-size // multiple) * multiple, tile) if size % multiple else size
    return [(a, min(a + size, length)) for a in range(0, length, size)], size


def _tiles(h, w, tile, pad, multiple=1):
    """Window shape and [(core y0, y1, x0, x1, window y, x)]: cores do not overlap; every window has one
    shape (core + 2 * pad, clipped to the image), shifted inward at the borders, so border tiles get more
    context, not less, and one shape serves all (oneDNN and torch.compile reuse it)."""
    rows, ch = _cores(h, tile, multiple)
    cols, cw = _cores(w, tile, multiple)
    win_h, win_w = min(ch + 2 * pad, h), min(cw + 2 * pad, w)
    tiles = [(y0, y1, x0, x1, min(max(y0 - pad, 0), h - win_h), min(max(x0 - pad, 0), w - win_w))
             for y0, y1 in rows for x0, x1 in cols]
    return (win_h, win_w), tiles


class _Collected(Exception):
    """Ends a forward pass once the statistics it was run for are taken."""


def _pooled_stats(model, x, win, tiles, exact):
    """Whole-image pooled statistics of each pooling module (``exact``: an ExactTiling, e.g. IMDN's channel
    attention), gathered tile by tile from core pixels.

    A pooling module sees only its tile, so a tile alone gets other statistics. Module k depends on the
    ones before it, so pass k runs the tiles only up to module k, with the earlier ones fixed to their
    whole-image values: about (modules + 1) / 2 extra network passes in all.
    """
    pooling = exact.modules(model)
    stats = []
    for module in pooling:
        acc, core = {}, None

        def collect(module, inputs):
            f = inputs[0]
            if f.shape[2:] != win:
                raise ValueError('exact tiles need the pooling at input resolution')
            y0, y1, x0, x1 = core
            f = f[:, :, y0:y1, x0:x1].double()
            for key, v in (('n', f[0, 0].numel()), ('s1', f.sum((2, 3), keepdim=True)),
                           ('s2', f.pow(2).sum((2, 3), keepdim=True))):
                acc[key] = acc.get(key, 0) + v
            raise _Collected

        handle = module.register_forward_pre_hook(collect)
        try:
            with _fixed_pooling(exact, pooling, stats):
                for y0, y1, x0, x1, wy, wx in tiles:
                    core = (y0 - wy, y1 - wy, x0 - wx, x1 - wx)
                    try:
                        model(x[:, :, wy:wy + win[0], wx:wx + win[1]])
                    except _Collected:
                        pass
        finally:
            handle.remove()
        stats.append(exact.pool(acc['s1'], acc['s2'], acc['n']).float())
    return pooling, stats


@contextlib.contextmanager
def _fixed_pooling(exact, pooling, stats):
    """The first ``len(stats)`` pooling modules use the given statistics instead of their input's."""
    handles = [m.register_forward_hook(lambda m, inputs, out, s=s: exact.apply(m, inputs[0], s))
               for m, s in zip(pooling, stats)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def tiled_forward(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int,
                  tile_pad: int = DEFAULT_TILE_PAD, multiple: int = 1, adaptive: bool = False,
                  exact: Optional['ExactTiling'] = None) -> torch.Tensor:
    """Run ``model`` tile by tile so that activations scale with ``tile``, not with the image.

    Each core of ``tile`` x ``tile`` input pixels runs inside a window with ``tile_pad`` pixels of
    context and only the core's output is kept; the output buffer is the only image-sized allocation.
    ``exact`` (an ExactTiling): first gather the pooling modules' whole-image statistics
    (``_pooled_stats``), so the result equals the whole-image output to float rounding once ``tile_pad``
    covers the receptive field, at the price of the extra passes.
    """
    _, _, h, w = x.shape
    win, tiles = _tiles(h, w, tile, tile_pad, multiple)
    pooling, stats = _pooled_stats(model, x, win, tiles, exact) if exact else ([], [])
    out, s = None, None
    with _fixed_pooling(exact, pooling, stats):
        for y0, y1, x0, x1, wy, wx in tiles:
            o = _window_forward(model, x[:, :, wy:wy + win[0], wx:wx + win[1]], multiple, adaptive)
            if out is None:
                s = o.shape[2] // win[0]
                out = torch.empty(x.shape[0], o.shape[1], h * s, w * s, device=x.device, dtype=torch.float32)
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = o[:, :, (y0 - wy) * s:(y1 - wy) * s, (x0 - wx) * s:(x1 - wx) * s]
    return out


def autocast(device: Union[str, torch.device], precision: str) -> ContextManager[Any]:
    """The autocast context for a precision name; fp32 runs without autocast."""
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f'precision must be one of {", ".join(AUTOCAST_DTYPES)}; got {precision!r}')
    if AUTOCAST_DTYPES[precision] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=AUTOCAST_DTYPES[precision])


def check_exact(info: 'ModelInfo') -> Optional[str]:
    """None if ``--exact-tiles`` applies to a model of ``info``, else the one-line reason it does not."""
    if info.tiles_exact:
        return (f'{info.arch} has no whole-image statistics: its plain tiles equal the whole image already once '
                '--tile-pad covers its receptive field')
    if info.exact is None:
        return f'{info.arch} pools whole-image information in a way exact tiles do not support; use --tile 0'
    return None


def forward(model: Callable[[torch.Tensor], torch.Tensor], img: torch.Tensor, info: Optional['ModelInfo'] = None,
            tile: int = 0, tile_pad: int = DEFAULT_TILE_PAD, exact: bool = False,
            adaptive: Optional[bool] = None) -> torch.Tensor:
    """The one forward path: ``model`` is any callable from NxCxHxW float to the SR tensor (a torch module, or
    a backend's runner); ``info`` (ModelInfo, None for a plain model) gives the input size multiple, the
    adaptive cropping of models that take a resized input (IMDN_AS) and how to make tiles exact.

    ``tile``: largest tile side in input pixels (0: the whole image at once); ``tile_pad``: context around
    each tile; ``exact``: tiles that reproduce the whole-image output (``tiled_forward``; needs a torch
    module whose ``info.exact`` is set). ``adaptive``: default ``info.resizes_input``.
    """
    multiple = info.size_multiple if info else 1
    adaptive = bool(info and info.resizes_input) if adaptive is None else adaptive
    if adaptive:
        multiple = max(multiple, 4)
    if tile < 0 or tile_pad < 0:
        raise ValueError(f'tile and tile_pad must be >= 0; got {tile}, {tile_pad}')
    if exact and (info is None or check_exact(info)):
        raise ValueError(check_exact(info) if info else 'exact tiles need the model\'s ModelInfo')
    if tile and (tile % multiple or tile_pad % multiple):
        raise ValueError(f'this model needs tile and tile_pad that are multiples of {multiple}; got {tile}, {tile_pad}')
    if tile and (img.shape[2] > tile or img.shape[3] > tile):
        return tiled_forward(model, img, tile, tile_pad, multiple, adaptive, info.exact if exact else None)
    return _window_forward(model, img, multiple, adaptive).float()


def upscale(model: Callable[[torch.Tensor], torch.Tensor], img: torch.Tensor, info: Optional['ModelInfo'] = None,
            tile: int = 0, tile_pad: int = DEFAULT_TILE_PAD, precision: str = 'fp32', channels_last: bool = False,
            exact: bool = False, adaptive: Optional[bool] = None) -> torch.Tensor:
    """``forward`` of a torch model on an NxCxHxW float tensor in [0, 1] under inference mode; returns the
    float32 SR tensor (not clamped). ``precision``: 'fp32', or 'bf16'/'fp16' under autocast.
    ``channels_last``: NHWC activations, faster on CPU (oneDNN) and on tensor-core GPUs, equal to NCHW
    within float rounding.
    """
    if channels_last:
        img = img.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(img.device, precision):
        return forward(model, img, info, tile, tile_pad, exact, adaptive)
