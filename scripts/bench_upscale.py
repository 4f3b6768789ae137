"""Upscaling speed on CPU: plain torch, every backend and precision of ``sr_kd.backends``, and onnxruntime
fp32 as the peer, side by side in one run, as ratios; with each one's output difference to plain fp32,
its Set5 PSNR, and the physical limit (the CPU's peak FLOP/s, the model's FLOPs per output pixel).

Why a script and not a test: timings depend on the machine and its load. Configurations are timed in
interleaved rounds (each round runs every configuration once) and the fastest round counts, so a
background load spike hits all of them alike; the load average is printed at the start and the end.
CPU seconds (all threads of this process, spin-waits included) are printed beside wall seconds: with
``--threads 1`` they measure the work per image even on a loaded machine.

    .venv/bin/python -m scripts.bench_upscale                 # both rows, forward passes and whole CLI calls
    .venv/bin/python -m scripts.bench_upscale --no-cli --rounds 5

Rows (issue 15): the official IMDN 64x6 x4 (../shared/pretrained/IMDN_x4.pth; a seeded random one when
absent) on 320x180, and an IMDN 32x4 student (``--student``, else seeded random weights: speed does not
depend on them) on 640x360. The CLI part times ``sr-kd upscale`` as a whole process on a folder of 8
images, per backend at upscale's default precision (auto: bf16 where the CPU has it; onnxruntime fp32 is
the peer), plus auto at fp32 where that differs: first with an empty artefact cache (export/compile/measurement included, reported
apart), then in interleaved rounds with the cache warm. Set5 PSNR needs ../shared/benchmarks/Set5 and
the official weights; it is skipped without them.
"""
import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

import sr_kd
from sr_kd.archs import IMDN
from sr_kd.archs.description import ModelInfo
from sr_kd.archs.loading import describe, load_model
from sr_kd.backends import PRECISIONS, Options, missing, prepare
from sr_kd.inference import upscale

from scripts.study_core import SHARED
TEACHER = os.path.join(SHARED, 'pretrained', 'IMDN_x4.pth')
SET5 = os.path.join(SHARED, 'benchmarks', 'Set5')
ROWS = {'64x6': (180, 320), '32x4': (360, 640)}
PEER = ('onnxruntime', 'fp32')
PEER_CLI = 'onnxruntime fp32'
COLD = (PEER_CLI, 'auto')  # CLI first calls timed with an empty cache (aoti's build is in the forward table)


def build(name: str, student: Optional[str] = None) -> Tuple[torch.nn.Module, str]:
    """(model, what it is): the official 64x6 when present, the given student, or seeded random weights."""
    if name == '64x6' and os.path.isfile(TEACHER):
        return load_model(TEACHER)[0], 'official IMDN_x4.pth'
    if name == '32x4' and student:
        return load_model(student)[0], student
    feat, mods = map(int, name.split('x'))
    torch.manual_seed(0)
    return IMDN(num_feat=feat, num_modules=mods, upscale=4).eval(), 'seeded random weights'


def test_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A natural image (a crop of Set14 barbara/others, resized) when ../shared is there, else seeded noise."""
    names = ['barbara', 'baboon', 'comic', 'lenna', 'monarch', 'pepper', 'zebra', 'face']
    path = os.path.join(SHARED, 'benchmarks', 'Set14', 'HR', names[seed % len(names)] + '.png')
    if os.path.isfile(path):
        from PIL import Image
        a = np.asarray(Image.open(path).convert('RGB').resize((w, h), Image.BICUBIC))
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --- the physical limit -------------------------------------------------------------------------------

def cpu_facts() -> Dict[str, Any]:
    """CPU model, flags, nominal MHz from /proc/cpuinfo (Linux)."""
    facts = {'model': '?', 'flags': set(), 'mhz': None}
    with contextlib.suppress(OSError), open('/proc/cpuinfo') as f:
        for line in f:
            key, _, value = line.partition(':')
            key = key.strip()
            if key == 'model name':
                facts['model'] = value.strip()
            elif key == 'flags':
                facts['flags'] = set(value.split())
            elif key == 'cpu MHz' and facts['mhz'] is None:
                facts['mhz'] = float(value)
    return facts


def peak_flops(threads: int) -> Tuple[Dict[str, float], str]:
    """Derived peak FLOP/s {'fp32', 'bf16'} for ``threads`` cores and how it was derived.

    fp32: lanes per FMA (16 with AVX512F, 8 with AVX2+FMA) x 2 FLOPs x 2 FMA pipes per core (Zen 2-4 and
    server Intel cores have two) x nominal clock x cores. bf16: AVX512-BF16's dot product does two
    multiply-adds per fp32 lane (2x fp32); AMX is not counted; without bf16 instructions bf16 is
    converted to fp32 and cannot beat fp32's peak.
    """
    f = cpu_facts()
    lanes = 16 if 'avx512f' in f['flags'] else 8 if {'avx2', 'fma'} <= f['flags'] else 4
    ghz = (f['mhz'] or 0) / 1000
    fp32 = lanes * 2 * 2 * ghz * 1e9 * threads
    bf16 = 2 * fp32 if 'avx512_bf16' in f['flags'] else fp32
    how = (f'{f["model"]}: {"AVX512F" if lanes == 16 else "AVX2+FMA" if lanes == 8 else "SSE"} ({lanes} fp32 lanes) x 2 '
           f'FLOPs x 2 FMA pipes x {ghz:.2f} GHz (nominal, /proc/cpuinfo) x {threads} cores; bf16 '
           f'{"AVX512-BF16 (2x fp32)" if "avx512_bf16" in f["flags"] else "has no native instructions here (<= fp32)"}')
    return {'fp32': fp32, 'bf16': bf16}, how


def measured_gemm_flops(threads: int, n: int = 1536, rounds: int = 5) -> float:
    """Achieved fp32 FLOP/s of one large matrix product (best of ``rounds``): what the cores deliver now."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(rounds))
    return 2 * n ** 3 / best


def flops_per_output_pixel(model: torch.nn.Module, h: int = 64, w: int = 64) -> float:
    """Convolution FLOPs (2 per multiply-add; pointwise ops not counted) per output pixel."""
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.rand(1, 3, h, w)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(x)
    return counter.get_total_flops() / (out.shape[2] * out.shape[3])


# --- forward passes ------------------------------------------------------------------------------------

def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bf16_conv_slowdown() -> float:
    """bf16 / fp32 time of one 48->64 3x3 convolution (1 thread, 80x45, channels-last, best of 3)."""
    conv = torch.nn.Conv2d(48, 64, 3, padding=1).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 48, 45, 80).contiguous(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            fp32 = min(_timed(lambda: conv(x)) for _ in range(4))
            with torch.autocast('cpu', dtype=torch.bfloat16):
                bf16 = min(_timed(lambda: conv(x)) for _ in range(4))
    finally:
        torch.set_num_threads(threads)
    return bf16 / fp32


def configurations(model: torch.nn.Module, info: ModelInfo, opts: str,
                   skip_bf16: Optional[str] = None) -> Dict[str, Tuple[Optional[Callable], str]]:
    """name -> (function x -> SR tensor, how it was prepared); 'plain fp32' is what an inference script does.
    ``skip_bf16``: why bf16 is not run (a CPU without bf16 instructions), or None."""
    plain = model

    def run_plain(x):
        with torch.no_grad():
            return plain(x)

    out = {'plain fp32': (run_plain, 'model(x) under no_grad, NCHW')}
    for backend, precisions in PRECISIONS.items():
        for precision in precisions:
            if precision == 'fp16':
                continue  # CPU fp16 has no fast path; the GPU row would take it
            if precision == 'bf16' and skip_bf16:
                out[f'{backend} {precision}'] = (None, skip_bf16)
                continue
            why = missing(backend)
            if why:
                out[f'{backend} {precision}'] = (None, why)
                continue
            try:
                t0 = time.perf_counter()
                r = prepare(backend, model if backend != 'eager' else _copy(model), info, precision,
                            Options(force_int8=True, cache_root=opts))  # int8 is shown, refused or not
                note = f'{r.note}; ready in {time.perf_counter() - t0:.1f} s' if r.note else ''
            except Exception as e:  # noqa: BLE001 - a configuration that cannot run is reported, not fatal
                out[f'{backend} {precision}'] = (None, f'{type(e).__name__}: {str(e).splitlines()[0][:150]}')
                continue
            out[f'{backend} {precision}'] = (lambda x, r=r: upscale(r.fn, x, info, precision=r.autocast,
                                                                    channels_last=r.eager), note)
    return out


def _copy(model):
    import copy
    return copy.deepcopy(model)


def set5_psnr(fn: Callable[[torch.Tensor], torch.Tensor], info: ModelInfo) -> Optional[float]:
    """Mean Y PSNR on Set5 x4 (MATLAB protocol, LR files) through ``fn``; None without ../shared."""
    from sr_kd.evaluate import list_images, load_pair
    from sr_kd.ops.metrics import psnr_ssim_y, to_uint8

    hr_dir, lr_dir = os.path.join(SET5, 'HR'), os.path.join(SET5, 'LR_bicubic', 'X4')
    if not os.path.isdir(lr_dir):
        return None
    vals = []
    for path in list_images(hr_dir):
        lr, hr = load_pair(path, 4, lr_dir)
        x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float() / 255
        vals.append(psnr_ssim_y(to_uint8(fn(x)), hr, 4)[0])
    return float(np.mean(vals))


def speed_table(args: argparse.Namespace, name: str, peaks: Dict[str, float]) -> float:
    h, w = ROWS[name]
    model, what = build(name, args.student)
    info = describe(model)
    x = test_image(h, w)
    fpp = flops_per_output_pixel(model)
    work = fpp * 16 * h * w
    print(f'\n## IMDN {name} x4 ({what}) on {w}x{h} ({4 * w}x{4 * h} out): {fpp / 1e3:.1f} kFLOP per output pixel, '
          f'{work / 1e9:.1f} GFLOP per image; limit at peak: fp32 {work / peaks["fp32"]:.3f} s, '
          f'bf16 {work / peaks["bf16"]:.3f} s\n', flush=True)
    fns = configurations(model, info, args.cache, args.skip_bf16)
    ready = {k: fn for k, (fn, _) in fns.items() if fn is not None}
    ref = ready['plain fp32'](x).float()
    diffs = {k: float((fn(x).float() - ref).abs().max()) for k, fn in ready.items()}  # also the warm-up
    times, cpu = {k: [] for k in ready}, {k: [] for k in ready}
    for _ in range(args.rounds):
        for k, fn in ready.items():
            c0 = time.process_time()
            times[k].append(_timed(lambda: fn(x)))
            cpu[k].append(time.process_time() - c0)
    psnr = {}
    if name == '64x6' and os.path.isfile(TEACHER) and args.set5:
        psnr = {k: set5_psnr(fn, info) for k, fn in ready.items()}
    base = min(times['plain fp32'])
    peer_key = ' '.join(PEER)
    peer = min(times[peer_key]) if peer_key in times else None
    print('| configuration | s / image | vs plain | vs onnxruntime fp32 | of fp32 peak | CPU s / image | '
          'max abs diff to plain fp32 | Set5 PSNR (dB) | how it was made |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for k, (fn, note) in fns.items():
        if fn is None:
            print(f'| {k} | not run: {note} ||||||||')
            continue
        best = min(times[k])
        p = f'{psnr[k]:.4f}' if psnr.get(k) is not None else '-'
        vs_peer = f'{peer / best:.2f}x' if peer else '-'
        print(f'| {k} | {best:.3f} | {base / best:.2f}x | {vs_peer} | {100 * work / best / peaks["fp32"]:.0f}% | '
              f'{min(cpu[k]):.2f} | {diffs[k]:.1e} | {p} | {note} |', flush=True)
    return fpp


# --- whole CLI calls -----------------------------------------------------------------------------------

def _cli(folder, ckpt, out, backend, cache, extra=()):
    env = dict(os.environ, SR_KD_CACHE=cache)
    cmd = [sys.executable, '-m', 'sr_kd.cli', 'upscale', folder, '-m', ckpt, '-o', out, '--overwrite',
           '--backend', backend, *extra]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f'{" ".join(cmd[3:])} failed: {res.stderr.strip().splitlines()[-1:]}')
    return seconds, res.stderr


def cli_configurations() -> Dict[str, Tuple[str, List[str]]]:
    """label -> (--backend, extra arguments): onnxruntime fp32 (the peer), then each backend at upscale's default
    precision (auto: bf16 where the CPU runs it in hardware), and auto at fp32 where that differs."""
    from sr_kd.backends import resolve_precision
    out = {PEER_CLI: ('onnxruntime', ['--precision', 'fp32'])}
    for b in ('auto', 'eager', 'aoti'):
        out[b if b == 'auto' else f'{b} {resolve_precision("auto", "cpu", b)}'] = (b, [])
    if resolve_precision('auto', 'cpu', 'auto') != 'fp32':
        out['auto fp32'] = ('auto', ['--precision', 'fp32'])
    return {k: v for k, v in out.items() if v[0] == 'auto' or not missing(v[0])}


def cli_table(args: argparse.Namespace, name: str, backends: Dict[str, Tuple[str, List[str]]]) -> None:
    h, w = ROWS[name]
    with tempfile.TemporaryDirectory() as tmp:
        from PIL import Image
        folder = os.path.join(tmp, 'in')
        os.makedirs(folder)
        for i in range(8):
            a = (test_image(h, w, seed=i)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(a).save(os.path.join(folder, f'{i}.png'))
        ckpt = TEACHER if name == '64x6' and os.path.isfile(TEACHER) else args.student
        if not ckpt:
            ckpt = os.path.join(tmp, f'imdn_{name}.pth')
            torch.save({'params': build(name)[0].state_dict()}, ckpt)
        cold = os.path.join(tmp, 'cold_cache')
        first, chose = {}, ''
        for b, (backend, extra) in backends.items():  # first calls, each with an empty cache of its own
            if b not in COLD:
                continue
            shutil.rmtree(cold, ignore_errors=True)
            first[b], err = _cli(folder, ckpt, os.path.join(tmp, 'out'), backend, cold, extra)
            if b == 'auto':
                chose = next((line for line in err.splitlines() if line.startswith('auto:')), '')
                shutil.copytree(cold, args.cache, dirs_exist_ok=True)  # warm runs use this decision
        for backend, extra in backends.values():  # the warm cache every later call finds
            _cli(folder, ckpt, os.path.join(tmp, 'out'), backend, args.cache, extra)
        times = {b: [] for b in backends}
        for _ in range(args.cli_rounds):
            for b, (backend, extra) in backends.items():
                times[b].append(_cli(folder, ckpt, os.path.join(tmp, 'out'), backend, args.cache, extra)[0])
    print(f'\n### `sr-kd upscale` on a folder of 8 {w}x{h} PNGs (IMDN {name} x4, default --tile 512), whole process,'
          f' best of {args.cli_rounds} interleaved rounds with the cache warm\n')
    print('| --backend | s per call (8 images) | vs onnxruntime | first call, empty cache (s) |')
    print('| --- | --- | --- | --- |')
    peer = min(times[PEER_CLI]) if PEER_CLI in times else None
    for b in backends:
        best = min(times[b])
        cold = f'{first[b]:.1f}' if b in first else 'no build' if b.startswith('eager') else 'see the build time above'
        print(f'| {b} | {best:.2f} | {f"{peer / best:.2f}x" if peer else "-"} | {cold} |')
    if chose:
        print(f'\n{re.sub(r"decision kept in .*", "decision kept in the cache", chose)}')


def main() -> None:
    sr_kd.load()  # compat + registries before basicsr
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    p.add_argument('--student', help='a trained 32x4 checkpoint (speed does not depend on the weights)')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--cli-rounds', type=int, default=3)
    p.add_argument('--no-cli', action='store_true', help='skip the whole-CLI timings')
    p.add_argument('--cli-only', action='store_true', help='only the whole-CLI timings (a warm-up call builds '
                   'what the cache lacks, untimed)')
    p.add_argument('--no-set5', dest='set5', action='store_false', help='skip Set5 PSNR')
    p.add_argument('--bf16', action='store_true', help='run bf16 even on a CPU without bf16 instructions')
    p.add_argument('--threads', type=int, help='torch/onnxruntime threads (default: torch\'s, the physical cores)')
    p.add_argument('--cache', default=os.path.join(tempfile.gettempdir(), 'sr_kd_bench_cache'),
                   help='artefact cache for the forward-pass and warm CLI timings')
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    peaks, how = peak_flops(threads)
    print(f'# torch {torch.__version__}, {threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, '
          f'{os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f} at start')
    print(f'# peak: fp32 {peaks["fp32"] / 1e9:.0f} GFLOP/s, bf16 {peaks["bf16"] / 1e9:.0f} GFLOP/s ({how}); '
          f'a {1536}^2 fp32 matrix product reaches {measured_gemm_flops(threads) / 1e9:.0f} GFLOP/s now')
    print('# GPU: none here; the GPU row is not measured')
    args.skip_bf16 = None
    if not ({'avx512_bf16', 'amx_bf16'} & cpu_facts()['flags']) and not args.bf16:
        args.skip_bf16 = (f'no bf16 instructions on this CPU: one 3x3 convolution takes {bf16_conv_slowdown():.1f}x '
                          'its fp32 time in bf16 (--bf16 runs it anyway)')
        print(f'# bf16: {args.skip_bf16}')
    for name in [] if args.cli_only else args.rows:
        speed_table(args, name, peaks)
    if not args.no_cli:
        for name in args.rows:
            cli_table(args, name, cli_configurations())
    print(f'\n# load average {os.getloadavg()[0]:.1f} at the end')


if __name__ == '__main__':
    main()
