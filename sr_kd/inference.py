"""Forward passes for whole images, tiles and IMDN's adaptive cropping, in one place.

Evaluation, validation, the ``sr-kd upscale`` CLI and the benchmarks all call ``upscale``, so a speed or
memory fix here reaches every user of a model.
"""
import contextlib

import torch

# The convolutions see 4 * num_modules + 3 LR pixels around each output pixel (27 for 64x6): a pad of 32
# covers that (with attention off, tiles then equal the whole image to 4e-5). What remains is IMDN's channel
# attention, which pools over whatever it is shown; larger pads narrow that gap only slowly, at quadratic
# cost, and ``exact`` closes it (docs/performance.md, "Tiling seams").
DEFAULT_TILE_PAD = 32
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def adaptive_crop_forward(model, x, overlap=32, multiple=4):
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
    """For images too small for the four patches: replicate-pad to a multiple, run, crop back."""
    _, _, h, w = x.shape
    ph, pw = -h % multiple, -w % multiple
    o = model(torch.nn.functional.pad(x, (0, pw, 0, ph), mode='replicate'))
    s = o.shape[2] // (h + ph)
    return o[:, :, :h * s, :w * s]


def _window_forward(model, x, adaptive):
    """One forward; IMDN_AS (``adaptive``) crops adaptively when a side is not a multiple of 4, as the
    official test script does, and runs the whole input otherwise."""
    if adaptive and (x.shape[2] % 4 or x.shape[3] % 4):
        return adaptive_crop_forward(model, x)
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


def _attention_stats(model, x, win, tiles):
    """Whole-image (std + mean) of each channel-attention input, gathered tile by tile from core pixels.

    IMDN's attention pools over the whole feature map, so a tile alone sees other statistics. Attention k
    depends on attentions before it, so pass k runs the tiles only up to attention k, with the earlier
    ones fixed to their whole-image values: about (blocks + 1) / 2 extra network passes in all.
    """
    from sr_kd.archs.imdn_arch import CCA
    attentions = [m for m in model.modules() if isinstance(m, CCA)]
    stats = []
    for cca in attentions:
        acc, core = {}, None

        def collect(module, inputs):
            f = inputs[0]
            if f.shape[2:] != win:
                raise ValueError('exact tiles need channel attention at input resolution (IMDN, not IMDN_AS)')
            y0, y1, x0, x1 = core
            f = f[:, :, y0:y1, x0:x1].double()
            for key, v in (('n', f[0, 0].numel()), ('s1', f.sum((2, 3), keepdim=True)),
                           ('s2', f.pow(2).sum((2, 3), keepdim=True))):
                acc[key] = acc.get(key, 0) + v
            raise _Collected

        handle = cca.register_forward_pre_hook(collect)
        try:
            with _fixed_attention(attentions, stats):
                for y0, y1, x0, x1, wy, wx in tiles:
                    core = (y0 - wy, y1 - wy, x0 - wx, x1 - wx)
                    try:
                        model(x[:, :, wy:wy + win[0], wx:wx + win[1]])
                    except _Collected:
                        pass
        finally:
            handle.remove()
        mean = acc['s1'] / acc['n']
        stats.append(((acc['s2'] / acc['n'] - mean ** 2).clamp_min(0).sqrt() + mean).float())
    return attentions, stats


@contextlib.contextmanager
def _fixed_attention(attentions, stats):
    """The first ``len(stats)`` attentions gate with the given statistics instead of their input's."""
    handles = [m.register_forward_hook(lambda m, inputs, out, s=s: inputs[0] * m.conv_du(s.to(inputs[0].dtype)))
               for m, s in zip(attentions, stats)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def tiled_forward(model, x, tile, tile_pad=DEFAULT_TILE_PAD, adaptive=False, exact=False):
    """Run ``model`` tile by tile so that activations scale with ``tile``, not with the image.

    Each core of ``tile`` x ``tile`` input pixels runs inside a window with ``tile_pad`` pixels of
    context and only the core's output is kept; the output buffer is the only image-sized allocation.
    ``exact``: first gather the channel attention's whole-image statistics (``_attention_stats``), so
    the result equals the whole-image output to float rounding once ``tile_pad`` covers the receptive
    field (4 * blocks + 3 pixels), at the price of the extra passes.
    """
    _, _, h, w = x.shape
    win, tiles = _tiles(h, w, tile, tile_pad, 4 if adaptive else 1)
    attentions, stats = _attention_stats(model, x, win, tiles) if exact else ([], [])
    out, s = None, None
    with _fixed_attention(attentions, stats):
        for y0, y1, x0, x1, wy, wx in tiles:
            o = _window_forward(model, x[:, :, wy:wy + win[0], wx:wx + win[1]], adaptive)
            if out is None:
                s = o.shape[2] // win[0]
                out = torch.empty(x.shape[0], o.shape[1], h * s, w * s, device=x.device, dtype=torch.float32)
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = o[:, :, (y0 - wy) * s:(y1 - wy) * s, (x0 - wx) * s:(x1 - wx) * s]
    return out


def autocast(device, precision):
    """The autocast context for a precision name; fp32 runs without autocast."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}; got {precision!r}')
    if PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=PRECISIONS[precision])


def upscale(model, img, adaptive=False, tile=0, tile_pad=DEFAULT_TILE_PAD, precision='fp32', channels_last=False,
            exact=False):
    """Run ``model`` on an NxCxHxW float tensor in [0, 1]; returns the float32 SR tensor (not clamped).

    ``adaptive``: IMDN_AS's adaptive cropping when a side is not a multiple of 4 (whole image otherwise).
    ``tile``: largest tile side in input pixels (0: the whole image at once); ``tile_pad``: context around
    each tile; ``exact``: tiles that reproduce the whole-image output (see ``tiled_forward``).
    ``precision``: 'fp32', or 'bf16'/'fp16' under autocast. ``channels_last``: NHWC activations, faster on
    CPU (oneDNN) and on tensor-core GPUs, equal to NCHW within float rounding.
    """
    if tile < 0 or tile_pad < 0:
        raise ValueError(f'tile and tile_pad must be >= 0; got {tile}, {tile_pad}')
    if exact and adaptive:
        raise ValueError('exact tiles work for IMDN, not with adaptive cropping (IMDN_AS)')
    if adaptive and tile and (tile % 4 or tile_pad % 4):
        raise ValueError(f'adaptive (IMDN_AS) tiles need tile and tile_pad that are multiples of 4; '
                         f'got {tile}, {tile_pad}')
    if channels_last:
        img = img.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(img.device, precision):
        if tile and (img.shape[2] > tile or img.shape[3] > tile):
            return tiled_forward(model, img, tile, tile_pad, adaptive, exact)
        return _window_forward(model, img, adaptive).float()
