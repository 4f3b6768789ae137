"""Upscaling speed and memory: a plain forward against ``sr_kd.inference.upscale``, side by side in one run.

Why a script and not a test: timings depend on the machine and its load. Configurations are timed in
interleaved rounds (each round runs every configuration once) and the fastest round counts, so a
background load spike hits all of them alike. Peak memory is each configuration's own: one subprocess per
configuration runs a single upscale and reports its peak RSS (CPU) or peak allocated memory (CUDA).
Peak RSS is read from /proc/self/status (VmHWM), not getrusage: Linux carries ru_maxrss over fork and
exec, so a child of this (large) process would report at least the parent's peak.

    .venv/bin/python scripts/bench_upscale.py --rounds 3 --set5 --rss-1080p
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import sr_kd  # noqa: F401 - registries
from sr_kd.archs import IMDN
from sr_kd.commands.upscale_cmd import DEFAULT_TILE as TILE
from sr_kd.inference import upscale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, '..', 'shared')
TEACHER = os.path.join(SHARED, 'pretrained', 'IMDN_x4.pth')


def build(name, ckpt):
    """'64x6' (the official x4 weights when present) or '32x4' (a student; its weights do not change speed)."""
    from sr_kd.archs.detect import load_model
    if name == '64x6' and os.path.isfile(TEACHER):
        return load_model(TEACHER)[0]
    if ckpt:
        return load_model(ckpt)[0]
    feat, mods = map(int, name.split('x'))
    torch.manual_seed(0)
    return IMDN(num_feat=feat, num_modules=mods, upscale=4).eval()


def test_image(h, w):
    """A natural image (Set14 barbara, resized) when ../shared is there, else seeded noise."""
    path = os.path.join(SHARED, 'benchmarks', 'Set14', 'HR', 'barbara.png')
    if os.path.isfile(path):
        from PIL import Image
        a = np.asarray(Image.open(path).convert('RGB').resize((w, h), Image.BICUBIC))
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))


def runners(model, device, compile_ok):
    """name -> function(x) for each configuration; the plain one is what an inference script does."""
    def plain(x):
        with torch.no_grad():
            return model(x)

    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)  # .to() is in place: keep plain plain
    out = {'plain fp32': plain,
           'ours fp32': lambda x: upscale(cl, x, channels_last=True),
           'ours bf16': lambda x: upscale(cl, x, precision='bf16', channels_last=True),
           f'ours fp32, tiles {TILE}': lambda x: upscale(cl, x, tile=TILE, channels_last=True),
           f'ours fp32, exact tiles {TILE}': lambda x: upscale(cl, x, tile=TILE, channels_last=True, exact=True)}
    if device == 'cuda':
        out['ours fp16'] = lambda x: upscale(cl, x, precision='fp16', channels_last=True)
    if compile_ok:
        import torch._inductor.config as inductor
        inductor.freezing = True  # weights become constants: oneDNN prepacks them on CPU
        compiled = torch.compile(cl)
        out['ours bf16 + compile'] = lambda x: upscale(compiled, x, precision='bf16', channels_last=True)
    return out


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def vm_hwm():
    """This process's own peak RSS in bytes (VmHWM is per address space, so it starts afresh at exec)."""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmHWM'))


# Runs ``sr-kd upscale`` and prints its VmHWM (kB) as stderr's last line.
CLI_WITH_PEAK = ('import sys; from sr_kd.cli import main; rc = main(sys.argv[1:]); '
                 "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')), "
                 'file=sys.stderr); sys.exit(rc)')


def child(args):
    """One configuration, one upscale; prints JSON with the peak memory."""
    model = build(args.model, args.student)
    x = test_image(args.height, args.width).to(args.device)
    fn = runners(model.to(args.device), args.device, args.child.endswith('compile'))[args.child]
    fn(x)
    sync(args.device)
    peak = torch.cuda.max_memory_allocated() if args.device == 'cuda' else vm_hwm()
    print(json.dumps({'peak_bytes': peak}))


def peak_memory(args, model_name, config):
    cmd = [sys.executable, __file__, '--child', config, '--model', model_name, '--height', str(args.height),
           '--width', str(args.width), '--device', args.device] + (['--student', args.student] if args.student else [])
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        return f'failed: {res.stderr.strip().splitlines()[-1]}'
    return json.loads(res.stdout.strip().splitlines()[-1])['peak_bytes'] / 2 ** 30


def speed_table(args):
    x = test_image(args.height, args.width).to(args.device)
    print(f'\n## x4 on a {args.width}x{args.height} input ({4 * args.width}x{4 * args.height} out), '
          f'{args.rounds} interleaved rounds, fastest counts\n')
    print('| model | configuration | s / image | output MP/s | vs plain | max abs diff to plain | peak memory (GiB) |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for name in args.models:
        model = build(name, args.student).to(args.device)
        fns = runners(model, args.device, args.compile)
        ref = None
        times = {k: [] for k in fns}
        diffs = {}
        for k, fn in list(fns.items()):  # warm-up (oneDNN primitives, compilation) and the outputs
            try:
                out = fn(x).float()
            except Exception as e:  # noqa: BLE001 - a configuration that cannot run is reported, not fatal
                print(f'| {name} | {k} | failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:120]} |||||')
                del fns[k], times[k]
                continue
            ref = out if ref is None else ref
            diffs[k] = (out - ref).abs().max().item()
            del out
        for _ in range(args.rounds):
            for k, fn in fns.items():
                sync(args.device)
                t0 = time.perf_counter()
                fn(x)
                sync(args.device)
                times[k].append(time.perf_counter() - t0)
        mp = 16 * args.height * args.width / 1e6
        base = min(times['plain fp32'])
        for k in fns:
            best = min(times[k])
            mem = peak_memory(args, name, k)
            mem = f'{mem:.2f}' if isinstance(mem, float) else mem
            print(f'| {name} | {k} | {best:.2f} | {mp / best:.2f} | {base / best:.2f}x | {diffs[k]:.1e} | {mem} |',
                  flush=True)


def set5_psnr(args):
    """Mean PSNR/SSIM (Y, MATLAB protocol) of the official x4 model on Set5 per precision."""
    from sr_kd.archs.detect import load_model
    from sr_kd.evaluate import list_images, load_pair
    from sr_kd.ops.metrics import psnr_ssim_y, to_uint8

    model = load_model(TEACHER)[0].to(memory_format=torch.channels_last)
    hr_dir = os.path.join(SHARED, 'benchmarks', 'Set5', 'HR')
    lr_dir = os.path.join(SHARED, 'benchmarks', 'Set5', 'LR_bicubic', 'X4')
    print('\n## Set5 x4, official IMDN weights, Y-channel PSNR/SSIM (MATLAB protocol)\n')
    print('| precision | PSNR (dB) | SSIM |')
    print('| --- | --- | --- |')
    for precision in ('fp32', 'bf16'):
        rows = []
        for path in list_images(hr_dir):
            lr, hr = load_pair(path, 4, lr_dir)
            x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float() / 255
            rows.append(psnr_ssim_y(to_uint8(upscale(model, x, precision=precision, channels_last=True)), hr, 4))
        print(f'| {precision} | {np.mean([r[0] for r in rows]):.4f} | {np.mean([r[1] for r in rows]):.4f} |')


def ntire_runtime(args, repeats=10):
    """The NTIRE efficient-SR protocol's number: IMDN 64x6 x4 on a 256x256 input, fp32 and ours, in ms."""
    x = test_image(256, 256).to(args.device)
    fns = runners(build('64x6', None).to(args.device), args.device, False)
    print(f'\n## IMDN 64x6 x4 on 256x256 (NTIRE efficient-SR runtime), best of {repeats}\n')
    print('| configuration | ms |')
    print('| --- | --- |')
    for k in ('plain fp32', 'ours fp32', 'ours bf16') + (('ours fp16',) if args.device == 'cuda' else ()):
        fns[k](x)
        best = float('inf')
        for _ in range(repeats):
            sync(args.device)
            t0 = time.perf_counter()
            fns[k](x)
            sync(args.device)
            best = min(best, time.perf_counter() - t0)
        print(f'| {k} | {1000 * best:.1f} |')


def rss_1080p(args):
    """``sr-kd upscale`` of a 1920x1080 PNG with tiles, in a subprocess, and that process's peak RSS."""
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, 'frame1080.png')
        Image.fromarray((test_image(1080, 1920)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(src)
        ckpt = TEACHER if os.path.isfile(TEACHER) else None
        if ckpt is None:
            ckpt = os.path.join(tmp, 'imdn.pth')
            torch.save({'params': build('64x6', None).state_dict()}, ckpt)
        cmd = [sys.executable, '-c', CLI_WITH_PEAK, 'upscale', src, '-m', ckpt, '-o', os.path.join(tmp, 'out'),
               '--tile', str(args.tile)] + args.upscale_args
        t0 = time.perf_counter()
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        peak = int(res.stderr.strip().splitlines()[-1]) / 2 ** 20
        print(f'\n## 1920x1080 -> 7680x4320 with `sr-kd upscale --tile {args.tile} {" ".join(args.upscale_args)}`'
              f' (IMDN 64x6 x4, process start to file written)\n')
        print(f'peak RSS {peak:.2f} GiB, {seconds:.1f} s')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=['64x6', '32x4'])
    p.add_argument('--student', help='a trained 32x4 checkpoint (speed does not depend on the weights)')
    p.add_argument('--height', type=int, default=720)
    p.add_argument('--width', type=int, default=1280)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, help='torch threads (default: torch\'s choice, the physical cores)')
    p.add_argument('--compile', action='store_true', help='add a torch.compile configuration')
    p.add_argument('--set5', action='store_true', help='Set5 PSNR in fp32 and bf16 (needs ../shared)')
    p.add_argument('--rss-1080p', action='store_true', help='peak RSS of a tiled 1080p x4 upscale')
    p.add_argument('--ntire', action='store_true', help='IMDN x4 runtime on 256x256 (ms)')
    p.add_argument('--tile', type=int, default=TILE, help='tile for --rss-1080p')
    p.add_argument('--upscale-args', nargs=argparse.REMAINDER, default=[], help='more sr-kd upscale options')
    p.add_argument('--child', help=argparse.SUPPRESS)
    p.add_argument('--model', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        return child(args)
    print(f'# torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, '
          f'CPU capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} logical CPUs, '
          f'load average {os.getloadavg()[0]:.1f} at start')
    speed_table(args)
    if args.set5:
        set5_psnr(args)
    if args.ntire:
        ntire_runtime(args)
    if args.rss_1080p:
        rss_1080p(args)


if __name__ == '__main__':
    main()
