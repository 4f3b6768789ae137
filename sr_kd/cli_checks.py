"""Checks of ``sr-kd`` arguments that must fail before any work is done, one line each (SRKDError, exit 2).

One place for the rules the subcommands share: where outputs go (a folder that is a folder and can be
written; an output file that is not silently replaced), the device, thread count, scale and tile size.
Light on imports: torch only where a device must be checked.
"""
import argparse
import os
from typing import Iterable, List, Optional, Sequence, Tuple

from sr_kd.errors import SRKDError

# Tiles smaller than this give visibly worse images than the whole image (--tile 1 was 14.7 dB against
# the whole image) and are very slow; 0 still means the whole image.
MIN_TILE = 32


def writable_folder(path: str, flag: str) -> None:
    """Create ``path`` if needed and prove it can hold files (a temporary file is made and removed)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise SRKDError(f'{flag} {path}: exists and is not a folder')
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f'.sr_kd_write_test.{os.getpid()}')
        with open(probe, 'x'):
            pass
        os.remove(probe)
    except OSError as e:
        import errno
        why = 'it takes no new files' if e.errno == errno.ENOENT and os.path.isdir(path) else e.strerror  # /proc
        raise SRKDError(f'{flag} {path}: cannot write there ({why})') from e


def output_file(path: str, flag: str, overwrite: bool = False) -> None:
    """An output file that can be written, in a folder that can be written; an existing one only with
    --overwrite (as ``sr-kd upscale`` skips existing outputs unless told)."""
    if os.path.isdir(path):
        raise SRKDError(f'{flag} {path}: is a folder; give a file name')
    if os.path.exists(path) and not overwrite:
        raise SRKDError(f'{flag} {path}: exists; use --overwrite to replace it')
    writable_folder(os.path.dirname(os.path.abspath(path)), flag)


def device(name: str, flag: str = '--device') -> None:
    """cpu, cuda or cuda:N that exists on this machine."""
    import re
    if name == 'cpu':
        return
    if not re.fullmatch(r'cuda(:\d+)?', str(name)):
        raise SRKDError(f'{flag} must be cpu or cuda (cuda:N), not {name!r}')
    import torch
    if not torch.cuda.is_available():
        raise SRKDError(f'{flag} {name}: torch sees no CUDA device on this machine; use --device cpu')
    index = int(name.split(':')[1]) if ':' in name else 0
    if index >= torch.cuda.device_count():
        raise SRKDError(f'{flag} {name}: there are {torch.cuda.device_count()} CUDA devices')


def at_least(value: Optional[int], flag: str, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise SRKDError(f'{flag} must be >= {minimum}, not {value}')


def tile(value: Optional[int], flag: str = '--tile') -> None:
    if value is not None and value != 0 and value < MIN_TILE:
        raise SRKDError(f'{flag} must be 0 (whole image) or >= {MIN_TILE}, not {value}')


def upscale_args(args: argparse.Namespace) -> None:
    """Everything about ``sr-kd upscale``'s arguments that can be checked before the model is loaded."""
    at_least(args.scale, '--scale')
    at_least(args.threads, '--threads')
    tile(args.tile)
    at_least(args.tile_pad, '--tile-pad', 0)
    device(args.device)
    args._interrupted_hint = (f'; the images in {args.output} are complete (written whole or not at all): run '
                              'the same command again to do the rest (it skips existing outputs)')


def upscale_jobs(jobs: Sequence[Tuple[str, str]], inputs: Sequence[str], exts: Sequence[str], output: str) -> None:
    """At least one image to do, and an output folder that can take it."""
    if not jobs:
        raise SRKDError(f'no images found in {", ".join(inputs)} (looked for {" ".join(exts)}; use -r for '
                        'subfolders)')
    writable_folder(output, '-o')


def image_notes(jobs: Iterable[Tuple[str, str]], ext: str) -> List[str]:
    """One line per input whose output cannot hold everything it has, said before the work: animated
    images (only the first frame is upscaled), alpha written as JPEG (dropped), 16 bits per channel written
    as JPEG or WebP (8), palette images (written as RGB(A): an upscaled image has more colours than a
    palette)."""
    from PIL import Image

    from sr_kd.image_io import sixteen_bits
    notes = []
    for src, dst in jobs:
        try:
            with Image.open(src) as im:
                frames = getattr(im, 'n_frames', 1)
                alpha = im.mode in ('RGBA', 'LA', 'PA', 'La') or 'transparency' in im.info
                mode = im.mode
        except Exception:  # noqa: BLE001 - unreadable files are reported, one line each, when processed
            continue
        if frames > 1:
            notes.append(f'note: {src} has {frames} frames; only the first is upscaled')
        if alpha and ext == 'jpg':
            notes.append(f'note: {src} has transparency, which JPEG cannot hold: it is dropped (use --ext png '
                         'to keep it)')
        if ext != 'png' and sixteen_bits(src):
            notes.append(f'note: {src} has 16 bits per channel, which {ext.upper()} cannot hold: {dst} is written '
                         'with 8 (use --ext png to keep 16)')
        if mode == 'P':
            notes.append(f'note: {src} is a palette image; {dst} is written as RGB{"A" if alpha else ""}')
    return notes
