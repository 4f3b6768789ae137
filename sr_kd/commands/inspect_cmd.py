"""``sr-kd inspect CKPT``: what a weights file holds, as sr_kd and spandrel see it, and what can be tapped.

Prints the detected architecture, scale, parameter count, size multiple, tiling and the options that
rebuild it; then the modules whose outputs are N x C x H x W on a probe input (the names ``distill.pairs``
takes, as ``named_modules()`` gives them), with the body's blocks that ``pairs: auto`` picks from marked.
"""
import argparse

ORDER = 4  # its place in sr-kd --help
HELP = 'what a weights file holds: architecture, scale, parameters and the module names distill.pairs can tap'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('model', metavar='CKPT', help='weights file (.pth, .safetensors): sr_kd\'s or any spandrel knows')
    p.add_argument('--size', type=int, default=32, help='side of the random probe input in LR pixels')
    p.add_argument('--all', action='store_true', help='list every module with a 4-D output (default: the top '
                                                      'level and the body\'s blocks)')
    p.add_argument('--param-key', default=None, help='key inside the checkpoint (default: params_ema, params or none)')


def run(args: argparse.Namespace) -> int:
    import torch

    from sr_kd.archs.loading import load_model
    from sr_kd.distill.auto_pairs import _outputs, body_blocks
    from sr_kd.errors import SRKDError
    from sr_kd.inference import check_exact

    if args.size < 1:
        raise SRKDError(f'--size must be >= 1, not {args.size}')
    model, info = load_model(args.model, args.param_key)
    params = sum(p.numel() for p in model.parameters())
    from sr_kd.archs.loading import inference_parameters
    used = inference_parameters(model, info)
    size = -(-args.size // info.size_multiple) * info.size_multiple
    tiles = ('exact once --tile-pad covers the receptive field' if info.tiles_exact
             else 'inexact (whole-image statistics); --exact-tiles supported' if not check_exact(info)
             else 'inexact (whole-image statistics); prefer --tile 0')
    print(f'architecture: {info.arch} ({"detected by " + info.source})')
    print(f'scale:        x{info.scale}' + ('  (takes the LR resized to the output size; any --scale)'
                                             if info.resizes_input else ''))
    print(f'parameters:   {params:,}' + (f' stored, {used:,} used by an inference forward (re-parameterised)'
                                             if used != params else ''))
    print(f'channels:     {info.in_channels} in, {info.out_channels} out')
    print(f'input sides:  multiples of {info.size_multiple}')
    print(f'tiles:        {tiles}')
    if info.tags:
        print(f'tags:         {", ".join(info.tags)}')
    if info.network_opt:
        print(f'network_g:    {info.network_opt}')
    x = torch.rand(1, info.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    blocks = set(body_blocks(model, x))
    outputs = _outputs(model, x)
    modules = dict(model.named_modules())
    print(f'\nmodules with N x C x H x W outputs on a 1x{info.in_channels}x{size}x{size} input '
          f'(* = body blocks, what distill.pairs: auto picks from):')
    width = max((len(n) for n in outputs), default=4)
    for name, (_, shape) in sorted(outputs.items(), key=lambda kv: kv[1][0]):
        if args.all or name in blocks or '.' not in name:
            mark = '*' if name in blocks else ' '
            print(f'{mark} {name:<{width}}  {type(modules[name]).__name__:<20} {tuple(shape)}')
    return 0
