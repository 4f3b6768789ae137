"""``sr-kd upscale``: super-resolve files, folders and globs with a checkpoint, batch-safe.

One bad file is reported in one line and the batch goes on; outputs are written through a temporary
name, so an interrupted run leaves only whole images and a re-run skips them.
"""
import argparse
import collections
import errno
import glob
import os
import sys
import time
from typing import TYPE_CHECKING, Iterable, List, Tuple

from sr_kd.image_io import FORMATS
from sr_kd.backends import ALL_PRECISIONS
from sr_kd.backends import NAMES as BACKENDS
from sr_kd.backends import help_text as backends_help
from sr_kd.inference import DEFAULT_TILE_PAD

if TYPE_CHECKING:
    import numpy as np

ORDER = 1  # its place in sr-kd --help
HELP = 'upscale image files, folders and globs with a checkpoint'

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff', '.gif')
DEFAULT_TILE = 512


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ('Upscale images with a checkpoint; the architecture and scale are read from it. '
                     'Exit status: 0, or the number of images that failed (at most 125); 2 also for usage errors.')
    p.add_argument('inputs', nargs='+', metavar='INPUT', help='image files, folders and glob patterns')
    p.add_argument('-m', '--model', required=True,
                   help='weights file (.pth, .safetensors): sr_kd\'s or any model spandrel knows (ESRGAN, SPAN, ...)')
    p.add_argument('-o', '--output', required=True, metavar='OUTDIR', help='output folder (created if missing)')
    p.add_argument('-r', '--recursive', action='store_true', help='descend into subfolders (mirrored in OUTDIR)')
    p.add_argument('--tile', type=int, default=DEFAULT_TILE, metavar='N',
                   help=f'process N x N input tiles so memory follows N, not the image (0: whole image; '
                        f'default {DEFAULT_TILE})')
    p.add_argument('--tile-pad', type=int, default=DEFAULT_TILE_PAD, metavar='P',
                   help=f'context pixels around each tile (default {DEFAULT_TILE_PAD}, see docs/performance.md)')
    p.add_argument('--exact-tiles', action='store_true',
                   help='tiles that reproduce the whole-image output for archs with whole-image statistics (IMDN\'s '
                        'channel attention gets them from extra passes: about 4x the time of plain tiles for 64x6); '
                        'refused where tiles are exact already (SPAN, ESRGAN, ...) or it is unsupported')
    p.add_argument('--adaptive', action='store_true',
                   help="IMDN_AS's adaptive cropping (4 overlapping corner patches, overlap 32, sides a multiple "
                        'of 4) for sides that are not a multiple of 4; always on for IMDN_AS checkpoints')
    p.add_argument('--scale', type=int, metavar='S',
                   help='IMDN_AS only: output scale (the input is resized by S with bicubic first; default 4); for '
                        'other models it must equal the model\'s scale')
    p.add_argument('--device', default='cpu', help='cpu or cuda (cuda:N)')
    p.add_argument('--precision', choices=list(ALL_PRECISIONS), default='auto',
                   help='auto (default): bf16 where the device runs it in hardware (CUDA, a CPU with AVX512-BF16 or '
                        'AMX; 1.5-1.7x onnxruntime fp32 there, -0.005 dB on Set5), else fp32; bf16/fp16 run under '
                        'autocast; int8: --backend onnxruntime only (docs/performance.md)')
    p.add_argument('--backend', choices=list(BACKENDS), default='eager',
                   help=f'{backends_help()}; exported/compiled models are built once and cached in '
                        '$SR_KD_CACHE (default ~/.cache/sr_kd); see docs/performance.md')
    p.add_argument('--force-int8', action='store_true',
                   help='run int8 even where its measured PSNR cost exceeds 0.05 dB')
    p.add_argument('--suffix', default='', help='added to each output name before the extension')
    p.add_argument('--ext', choices=list(FORMATS), default='png', help='output format (default png)')
    p.add_argument('--threads', type=int, metavar='N', help='CPU threads for the network (default: torch\'s)')
    p.add_argument('--compile', action='store_true',
                   help='torch.compile the network (needs a C++ compiler on CPU): about 20 s once (less with a '
                        'warm cache), then faster per image; pays on folders of frames (docs/performance.md)')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs (default: skip them)')
    p.add_argument('--param-key', default=None, help='key inside the checkpoint (default: params_ema, params or none)')


def _expand(item, recursive, outdir=None):
    """(path, output name relative to OUTDIR) for one INPUT argument; an OUTDIR inside a folder given
    with -r is not descended into (its files are this command's outputs, not inputs)."""
    from sr_kd.errors import SRKDError

    if os.path.isdir(item):
        found = []
        skip = os.path.realpath(outdir) if outdir else None
        for root, dirs, files in os.walk(item):
            dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) != skip)
            found += [(os.path.join(root, f), os.path.relpath(os.path.join(root, f), item))
                      for f in sorted(files) if f.lower().endswith(IMAGE_EXTS)]
            if not recursive:
                break
        return found
    if os.path.isfile(item):
        return [(item, os.path.basename(item))]
    if glob.has_magic(item):
        matches = sorted(glob.glob(item, recursive=recursive))
        if not matches:
            raise SRKDError(f'no files match {item}')
        return [job for m in matches for job in _expand(m, recursive, outdir)]
    raise SRKDError(f'no such file or folder: {item}')


def plan(inputs: Iterable[str], outdir: str, suffix: str, ext: str, recursive: bool) -> List[Tuple[str, str]]:
    """[(input path, output path)] in input order; refuses clashing outputs and outputs that are inputs."""
    from sr_kd.errors import SRKDError

    if os.sep in suffix or '/' in suffix or '\0' in suffix:
        raise SRKDError(f'--suffix is added to a file name, so it cannot hold a path separator: {suffix!r}')
    jobs, seen = [], {}
    for item in inputs:
        for src, rel in _expand(item, recursive, outdir):
            dst = os.path.join(outdir, os.path.splitext(rel)[0] + suffix + '.' + ext)
            key = os.path.realpath(dst)
            if key in seen:
                raise SRKDError(f'{src} and {seen[key]} would both be written to {dst}; '
                                'give them separate runs or use -r on their common folder')
            if key == os.path.realpath(src):
                raise SRKDError(f'the output for {src} is the input itself; use --suffix or another -o')
            seen[key] = src
            jobs.append((src, dst))
    return jobs


class Upscaler:
    """Reads one file, runs the network with the chosen inference settings, returns the array to write."""

    def __init__(self, args: argparse.Namespace):
        import torch

        from sr_kd.archs.loading import load_model
        from sr_kd.errors import SRKDError
        from sr_kd.inference import check_exact

        if args.device != 'cpu' and not args.device.startswith('cuda'):
            raise SRKDError(f'--device must be cpu or cuda (cuda:N); got {args.device!r}')
        if args.device.startswith('cuda') and not torch.cuda.is_available():
            raise SRKDError('--device cuda was asked for, but torch sees no CUDA device')
        if args.tile < 0 or args.tile_pad < 0:
            raise SRKDError('--tile and --tile-pad must be >= 0')
        if args.threads:
            torch.set_num_threads(args.threads)
        from sr_kd.backends import PRECISIONS, Options, auto_precision, check, prepare, resolve_precision
        asked, args.precision = args.precision, resolve_precision(args.precision, args.device, args.backend)
        check(args.backend, args.precision, args.device, args.exact_tiles)
        if args.compile and args.backend != 'eager':
            raise SRKDError(f'--compile is for --backend eager; --backend {args.backend} is compiled already')
        model, info = load_model(args.model, args.param_key, args.device)
        self.model = model.to(memory_format=torch.channels_last)
        self.info, self.runner = info, None
        if args.scale is not None and not info.resizes_input and args.scale != info.scale:
            raise SRKDError(f'{args.model} is a {info.label} model; --scale {args.scale} cannot change that')
        if args.adaptive and not info.resizes_input:
            raise SRKDError(f"--adaptive is IMDN_AS's cropping; {args.model} is a {info.label} model")
        multiple = max(info.size_multiple, 4 if (args.adaptive or info.resizes_input) else 1)
        if args.tile and (args.tile % multiple or args.tile_pad % multiple):
            raise SRKDError(f'{info.label} needs --tile and --tile-pad that are multiples of {multiple}')
        if args.exact_tiles and check_exact(info):
            raise SRKDError(f'--exact-tiles: {check_exact(info)}')
        if args.exact_tiles and args.adaptive:
            raise SRKDError('--exact-tiles does not go with --adaptive cropping')
        if args.compile and args.exact_tiles:
            raise SRKDError('--compile and --exact-tiles do not go together (the statistics passes hook the network)')
        if args.compile:
            import torch._inductor.config as inductor
            inductor.freezing = True  # weights become constants: oneDNN prepacks them once
            self.model = torch.compile(self.model)
        else:
            self.runner = prepare(args.backend, self.model, info, args.precision,
                                  Options(device=args.device, force_int8=args.force_int8), args.exact_tiles)
            self.model = self.runner.fn
        self.precision = self.runner.autocast if self.runner else args.precision
        self.channels_last = self.runner.eager if self.runner else True
        self.scale = (args.scale or info.scale) if info.resizes_input else info.scale
        self.args = args
        if asked == 'auto':  # said once every check has passed, so an error stays the only line
            why = auto_precision(args.device, args.backend)[1]
            runs = PRECISIONS.get(args.backend, ('fp32', 'bf16'))  # what this backend takes, not what it refuses
            print(f'precision auto: {args.precision} ({why}; --precision {" or ".join(runs)} to choose)',
                  file=sys.stderr, flush=True)

    def __call__(self, path: str) -> Tuple['np.ndarray', float]:
        """(array ready for write_image, output megapixels)."""
        import torch
        import torch.nn.functional as F

        from sr_kd.image_io import compose, quantize, read_image
        from sr_kd.inference import upscale

        a = self.args
        pic = read_image(path)
        rgb = pic.rgb
        if self.info.resizes_input:  # IMDN_AS takes the LR already resized to the output size
            from sr_kd.ops.matlab_resize import imresize
            rgb = imresize(rgb.astype('float64'), scale=self.scale).clip(0, 1).astype('float32')
        x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).to(a.device)
        sr = upscale(self.model, x, self.info, tile=a.tile, tile_pad=a.tile_pad, precision=self.precision,
                     channels_last=self.channels_last, exact=a.exact_tiles, adaptive=(a.adaptive or None))
        _check_output(sr, x)
        size = sr.shape[2:]
        alpha = None
        if pic.alpha is not None:  # alpha is not an image the network knows: plain bicubic
            t = torch.from_numpy(pic.alpha)[None, None].to(a.device)
            alpha = quantize(F.interpolate(t, size=size, mode='bicubic', align_corners=False), pic.bits)[..., 0]
        out = compose(quantize(sr, pic.bits), alpha, pic.gray)
        return out, size[0] * size[1] / 1e6


def _check_output(sr, x):
    """Fail the image rather than write a wrong one with exit 0: NaN/inf anywhere, or black (every value
    <= 0 after clamping) from an input that is not black, is a broken model or precision, not a picture."""
    import torch

    from sr_kd.errors import SRKDError

    if not bool(torch.isfinite(sr).all()):
        raise SRKDError('the model gave NaN or infinite values for this image (broken weights, or try '
                        '--precision fp32)')
    if float(sr.max()) <= 0 and float(x.max()) > 1 / 255:
        raise SRKDError('the model gave an all-black image for an input that is not black (are these the '
                        "weights of this architecture? try --precision fp32); nothing written")


def _failure(src, e):
    """One line for a failed image (the reader's messages already name the file)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, (MemoryError, RuntimeError)):
        msg += ' (out of memory: try a smaller --tile)'
    return f'failed: {msg}' if src in msg else f'failed: {src}: {msg}'


def run(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from sr_kd.errors import SRKDError
    from sr_kd.image_io import write_image

    from sr_kd import cli_checks
    cli_checks.upscale_args(args)  # before any work: -o, --scale, --threads, --tile, --device
    jobs = plan(args.inputs, args.output, args.suffix, args.ext, args.recursive)
    cli_checks.upscale_jobs(jobs, args.inputs, IMAGE_EXTS, args.output)
    for note in cli_checks.image_notes(jobs, args.ext):
        print(note, file=sys.stderr)
    todo = [(s, d) for s, d in jobs if args.overwrite or not os.path.exists(d)]
    skipped = len(jobs) - len(todo)
    if skipped:
        print(f'skipping {skipped} of {len(jobs)} images whose output exists (use --overwrite to redo them)')
    upscaler = Upscaler(args)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=len(todo), unit='img', desc='upscale')
    say = bar.write if bar else print
    done, failed, megapixels, t0 = 0, 0, 0.0, time.perf_counter()
    # Encoding a large PNG takes as long as a GPU forward: a few writer threads (zlib releases the GIL)
    # keep the network busy; at most that many outputs wait in memory.
    writers = min(4, os.cpu_count() or 1)
    pending = collections.deque()

    def finish(entry):
        nonlocal done, failed, megapixels
        future, src, dst, mp, t_img = entry
        try:
            future.result()
        except (SRKDError, OSError) as e:
            if getattr(e, 'errno', None) in (errno.ENOSPC, errno.EDQUOT):  # every next image would fail too
                raise SRKDError(f'disk full writing {dst}: stopped after {done} image{"" if done == 1 else "s"} '
                                '(each written one is complete; free space and rerun: they are skipped)') from e
            failed += 1
            say(_failure(src, e))
        else:
            done += 1
            megapixels += mp
            if not bar:
                say(f'[{done + failed}/{len(todo)}] {src} -> {dst} ({mp:.2f} MP, {time.perf_counter() - t_img:.2f} s)')
        if bar:
            bar.update()

    with ThreadPoolExecutor(writers) as pool:
        for src, dst in todo:
            t_img = time.perf_counter()
            try:
                out, mp = upscaler(src)
            except (SRKDError, MemoryError, torch.OutOfMemoryError) as e:
                failed += 1
                say(_failure(src, e))
                if bar:
                    bar.update()
                continue
            if len(pending) >= writers:
                finish(pending.popleft())
            pending.append((pool.submit(write_image, dst, out, args.ext), src, dst, mp, t_img))
            del out
        while pending:
            finish(pending.popleft())
    if bar:
        bar.close()
    seconds = time.perf_counter() - t0
    print(f'upscaled {done} image{"" if done == 1 else "s"} ({skipped} skipped, {failed} failed), '
          f'{megapixels:.2f} MP out, {seconds:.1f} s')
    return min(failed, 125)
