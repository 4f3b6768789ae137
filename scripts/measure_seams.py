"""How far tiled (and adaptive-cropped) output is from the whole-image output, as a function of tile-pad.

Why: IMDN's contrast-aware channel attention pools mean and std over the whole feature map, so no pad
makes tiles exact; this measures what is left, to choose ``inference.DEFAULT_TILE_PAD`` and document the
tolerance. A control with the attention switched off (identity) shows the pure receptive-field part.

    .venv/bin/python -m scripts.measure_seams --image ../shared/benchmarks/Set14/HR/barbara.png
"""
import argparse
import time
from typing import Dict, List, Tuple

import numpy as np
import torch
from PIL import Image

import sr_kd
from sr_kd.archs.loading import load_model
from sr_kd.inference import DEFAULT_TILE_PAD, adaptive_crop_forward, upscale


def to_levels(t: torch.Tensor) -> torch.Tensor:
    return t.clamp(0, 1).mul(255).round()


def compare(a: torch.Tensor, b: torch.Tensor) -> Tuple[float, float, float, float]:
    """(max |diff| float, max |diff| in 8-bit levels, share of 8-bit values that differ, PSNR in dB)."""
    la, lb = to_levels(a), to_levels(b)
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).pow(2).mean().item()
    psnr = float('inf') if mse == 0 else 10 * np.log10(1 / mse)
    return (a - b).abs().max().item(), (la - lb).abs().max().item(), (la != lb).float().mean().item(), psnr


def plot(curves: Dict[str, List[Tuple[int, float]]], path: str, what: str) -> None:
    """Max abs diff to the whole image against tile-pad, one line per tile size, log scale."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from sr_kd.atomic import atomic_savefig
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, pts in curves.items():
        pads, diffs = zip(*pts)
        style = dict(marker='o') if len(pts) > 1 else dict(marker='*', markersize=12, linestyle='none')
        ax.plot(pads, [max(d, 1e-7) for d in diffs], label=label, **({'linestyle': '--'} if 'control' in label
                                                                      else {}), **style)
    ax.axhline(1 / 255, color='grey', linewidth=0.8)
    ax.text(0, 1 / 255 * 1.3, 'one 8-bit level', color='grey', fontsize=8)
    ax.axvline(DEFAULT_TILE_PAD, color='black', linewidth=0.8, linestyle=':')
    ax.text(DEFAULT_TILE_PAD - 1, 0.03, f'default --tile-pad {DEFAULT_TILE_PAD}', fontsize=8, ha='right',
            transform=ax.get_xaxis_transform())
    ax.set(yscale='log', xlabel='--tile-pad (LR pixels)', ylabel='max |tiled - whole image|',
           title=f'Tiling seams, IMDN {what}')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    atomic_savefig(fig, path, dpi=100)
    print(f'\n# plot: {path}')


def main() -> None:
    sr_kd.load()  # compat + registries before basicsr
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default='../shared/pretrained/IMDN_x4.pth')
    p.add_argument('--as-model', default='../shared/pretrained/IMDN_AS.pth')
    p.add_argument('--image', default='../shared/benchmarks/Set14/HR/barbara.png', help='used as the LR input')
    p.add_argument('--tiles', type=int, nargs='+', default=[128, 256, 512])
    p.add_argument('--pads', type=int, nargs='+', default=[0, 16, 32, 64])
    p.add_argument('--exact', type=int, nargs='*', default=[32], metavar='PAD',
                   help='pads to measure with exact tiles (whole-image attention statistics) at --exact-tile')
    p.add_argument('--exact-tile', type=int, default=256)
    p.add_argument('--control-tile', type=int, default=128, help='tile size of the no-attention control')
    p.add_argument('--plot', metavar='PNG', help='also draw max abs diff against pad (docs/seams.png)')
    args = p.parse_args()
    curves = {}  # label -> [(pad, max abs diff)]

    x = torch.from_numpy(np.array(Image.open(args.image).convert('RGB'))).permute(2, 0, 1)[None].float() / 255
    model, info = load_model(args.model)
    arch = info.network_opt
    print(f'# {args.image} ({x.shape[3]}x{x.shape[2]}) as LR, {info.label}, fp32, torch {torch.__version__}, {torch.get_num_threads()} threads')
    t0 = time.perf_counter()
    whole = upscale(model, x)
    print(f'# whole image: {time.perf_counter() - t0:.1f} s\n')
    t0 = time.perf_counter()
    upscale(model, x, tile=args.exact_tile, tile_pad=DEFAULT_TILE_PAD)
    print(f'# tiles of {args.exact_tile}, pad {DEFAULT_TILE_PAD}: {time.perf_counter() - t0:.1f} s\n')
    print('| tile | pad | max abs diff | max diff (8-bit levels) | 8-bit values changed | PSNR to whole (dB) |')
    print('| --- | --- | --- | --- | --- | --- |')
    for tile in args.tiles:
        for pad in args.pads:
            d, lv, share, psnr = compare(upscale(model, x, tile=tile, tile_pad=pad), whole)
            curves.setdefault(f'tile {tile}', []).append((pad, d))
            print(f'| {tile} | {pad} | {d:.4f} | {lv:.0f} | {100 * share:.2f}% | {psnr:.1f} |', flush=True)
    for pad in args.exact:
        t0 = time.perf_counter()
        d, lv, share, psnr = compare(upscale(model, x, info, tile=args.exact_tile, tile_pad=pad, exact=True), whole)
        curves.setdefault(f'tile {args.exact_tile}, --exact-tiles', []).append((pad, d))
        print(f'| {args.exact_tile}, exact | {pad} | {d:.1e} | {lv:.0f} | {100 * share:.2f}% | {psnr:.1f} '
              f'| ({time.perf_counter() - t0:.1f} s)', flush=True)

    for block in range(1, arch['num_modules'] + 1):  # control: channel attention off
        getattr(model, f'IMDB{block}').cca = torch.nn.Identity()
    whole = upscale(model, x)
    print(f'\nControl, channel attention replaced by identity (convolutions only), tile {args.control_tile}:\n')
    print('| pad | max abs diff | max diff (8-bit levels) |')
    print('| --- | --- | --- |')
    for pad in args.pads:
        d, lv, _, _ = compare(upscale(model, x, tile=args.control_tile, tile_pad=pad), whole)
        curves.setdefault(f'tile {args.control_tile}, attention off (control)', []).append((pad, d))
        print(f'| {pad} | {d:.2e} | {lv:.0f} |', flush=True)

    if args.plot:
        plot(curves, args.plot, f'{arch["num_feat"]}x{arch["num_modules"]} x{arch["upscale"]}, '
                                f'{x.shape[3]}x{x.shape[2]} LR input')

    as_model, _ = load_model(args.as_model)
    h, w = x.shape[2] - x.shape[2] % 4, x.shape[3] - x.shape[3] % 4
    xa = x[:, :, :h, :w]
    with torch.inference_mode():
        d, lv, share, psnr = compare(adaptive_crop_forward(as_model, xa), as_model(xa))
    print(f'\nIMDN_AS on {w}x{h} (sides multiples of 4): adaptive cropping forced vs whole image: max abs diff '
          f'{d:.4f}, {lv:.0f} levels, {100 * share:.2f}% of 8-bit values changed, PSNR {psnr:.1f} dB '
          '(the official script crops only when a side is not a multiple of 4; upscale() does the same)')


if __name__ == '__main__':
    main()
