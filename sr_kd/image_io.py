"""Image files as people have them, to arrays and back: the one image reader of ``upscale``, ``eval``, the
datasets and ``distill`` (two readers once decoded the same file differently: ``eval`` ignored the EXIF
orientation ``upscale`` applied and scored a consistent pair 26.5 dB instead of 44.6).

Pillow reads and writes everything except colour PNGs and TIFFs with 16 bits per channel, which it
truncates to 8 bits; those go through OpenCV (already a basicsr dependency) so a 16-bit input gives a
16-bit output.
EXIF orientation is applied on reading (a phone photo comes out the way it is shown), grayscale stays
grayscale, palette images become RGB(A), alpha is kept apart so the network never sees it, and float
images (32-bit TIFF) are read as values in [0, 1] (Pillow's own conversion clips them to a black image).
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sr_kd.atomic import atomic_path
from sr_kd.errors import SRKDError

FORMATS = {'png': 'PNG', 'jpg': 'JPEG', 'webp': 'WEBP'}
QUALITY = 95  # JPEG/WebP quality of outputs
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_GRAY_TYPES = (0, 4)  # IHDR colour types without colour: gray, gray + alpha


@dataclass
class Picture:
    """An image ready for a network: ``rgb`` HxWx3 float32 in [0, 1], ``alpha`` HxW float32 or None;
    ``gray`` and ``bits`` (8 or 16) say how to write the result back."""
    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    gray: bool
    bits: int


def _png_header(path):
    """(bit depth, colour type) from a PNG's IHDR, or None for any other file."""
    with open(path, 'rb') as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE):
        return None
    return head[24], head[25]


def _orient(a, orientation):
    """EXIF orientation on a numpy image, the same transforms as ``ImageOps.exif_transpose``."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1)}
    return np.ascontiguousarray(ops[orientation](a)) if orientation in ops else a


@dataclass
class _Decoded:
    """A decoded file before conversion: HxWxC array (C: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) whose
    values are in [0, peak]; ``bits`` is what an output written from it keeps."""
    a: np.ndarray
    peak: float
    gray: bool
    bits: int

    def channels(self):
        """(colour as HxWx3, alpha as HxW or None), still in [0, peak]."""
        a = self.a
        color = a[..., :1].repeat(3, axis=2) if a.shape[2] in (1, 2) else a[..., :3]
        return color, (a[..., -1] if a.shape[2] in (2, 4) else None)


def _decoded(a, peak, gray, bits=None):
    a = a[..., None] if a.ndim == 2 else a
    return _Decoded(a, peak, gray, bits or (16 if peak > 255 else 8))


def _float_image(path, a):
    """A float image (mode F: 32-bit TIFF) as values in [0, 1]: as it is when it lies in [0, 1], else
    scaled from the 8- or 16-bit range it lies in; written back with 16 bits."""
    if not np.isfinite(a).all():
        raise SRKDError(f'cannot read image {path}: a float image holding NaN or infinite values')
    top = float(a.max(initial=0.0))
    if a.min(initial=0.0) < 0 or top > 65535:
        raise SRKDError(f'cannot read image {path}: a float image with values in [{a.min():g}, {top:g}]; '
                        'expected [0, 1] (or 0-255, 0-65535)')
    peak = 1.0 if top <= 1.0 else 255.0 if top <= 255 else 65535.0
    return _decoded(a.astype(np.float32), peak, True, bits=16)


def _read_16bit(path, gray, orientation):
    """An image with 16 bits per channel (any PNG, a colour TIFF) through OpenCV: Pillow would cut colour to 8."""
    import cv2
    a = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if a is None:
        raise SRKDError(f'cannot read image {path}: OpenCV could not decode it')
    if a.ndim == 3:
        a = a[..., [2, 1, 0, 3][:a.shape[2]]]  # BGR(A) -> RGB(A)
    if gray and a.ndim == 3:  # OpenCV expands gray + alpha to BGRA
        a = a[..., [0, 3]] if a.shape[2] == 4 else a[..., 0]
    return _decoded(_orient(a, orientation), 65535.0, gray)


def _colour_16bit(im, path):
    """Whether the open file is a colour PNG or TIFF with 16 bits per channel (Pillow reads it as 8)."""
    header = _png_header(path) if im.format == 'PNG' else None
    if header:
        return header[0] == 16 and header[1] not in _PNG_GRAY_TYPES
    return im.format == 'TIFF' and im.mode in ('RGB', 'RGBA') and 16 in (im.tag_v2.get(258) or ())


def sixteen_bits(path: str) -> bool:
    """Whether the image holds 16 bits per channel (colour or gray): what a JPEG or WebP cannot keep."""
    with Image.open(path) as im:
        return _colour_16bit(im, path) or im.mode.startswith('I;16') or (_png_header(path) or (8,))[0] == 16


def _decode(path):
    """The file as a _Decoded, oriented; any decoding problem becomes an SRKDError with one line."""
    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1)
            header = _png_header(path) if im.format == 'PNG' else None
            if header and header[0] == 16:  # gray 16-bit PNGs too: OpenCV keeps their alpha
                return _read_16bit(path, header[1] in _PNG_GRAY_TYPES, orientation)
            if _colour_16bit(im, path):
                return _read_16bit(path, False, orientation)
            im = ImageOps.exif_transpose(im)
            if im.mode == 'F':
                return _float_image(path, np.asarray(im))
            if im.mode.startswith('I'):  # 16/32-bit gray (16-bit gray PNG, TIFF)
                return _decoded(np.asarray(im), 65535.0, True)
            if im.mode in ('L', 'LA', '1'):
                return _decoded(np.asarray(im.convert('LA' if im.mode == 'LA' else 'L')), 255.0, True)
            has_alpha = im.mode in ('RGBA', 'PA', 'La') or 'transparency' in im.info
            return _decoded(np.asarray(im.convert('RGBA' if has_alpha else 'RGB')), 255.0, False)
    except SRKDError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SRKDError(f'cannot read image {path}: {msg}') from e


def read_image(path: str) -> Picture:
    """A file as a Picture (float32 in [0, 1]; what ``upscale`` feeds a network and writes back)."""
    d = _decode(path)
    color, alpha = d.channels()
    color = np.ascontiguousarray(color, dtype=np.float32) / np.float32(d.peak)
    alpha = None if alpha is None else alpha.astype(np.float32) / np.float32(d.peak)
    return Picture(color, alpha, d.gray, d.bits)


def read_rgb_uint8(path: str) -> np.ndarray:
    """A file as HxWx3 uint8 RGB, oriented as shown, alpha dropped (what ``eval`` and the datasets use,
    as SR benchmarks are 8-bit RGB); deeper images are rounded to 8 bits."""
    d = _decode(path)
    color = d.channels()[0]
    if d.peak == 255.0 and color.dtype == np.uint8:
        return np.ascontiguousarray(color)
    return np.round(color.astype(np.float64) * (255.0 / d.peak)).astype(np.uint8)


def image_size(path: str, verify: bool = False) -> Tuple[int, int]:
    """(width, height) as the image is shown (EXIF orientation applied), from the header alone; ``verify``
    also checks the file's structure without decoding (PNG chunk checksums, truncation), so most broken
    files are found before any work (the rest, e.g. a truncated JPEG, when decoded)."""
    try:
        if verify:  # verify() must come straight after open, and the image is unusable after it
            with Image.open(path) as im:
                im.verify()
        with Image.open(path) as im:
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            return (im.height, im.width) if turned else im.size
    except Exception as e:  # noqa: BLE001 - Pillow raises many types (OSError, SyntaxError, ...) for bad files
        raise SRKDError(f'cannot read image {path}: {e}') from e


def quantize(t: torch.Tensor, bits: int) -> np.ndarray:
    """A 1xCxHxW (or CxHxW) float tensor in [0, 1] -> HxWxC uint8/uint16 array, in place on ``t``
    (clamp, scale, round) so that a large output costs no float copy."""
    peak = 255.0 if bits == 8 else 65535.0
    with torch.inference_mode():  # the network's outputs are inference tensors
        t = t.squeeze(0).clamp_(0, 1).mul_(peak).round_()
        return t.permute(1, 2, 0).cpu().numpy().astype(np.uint8 if bits == 8 else np.uint16)


def compose(rgb: np.ndarray, alpha: Optional[np.ndarray], gray: bool) -> np.ndarray:
    """Join the network's RGB output and the resized alpha (both HxW[xC] integer arrays) for writing."""
    color = rgb
    if gray:  # the network saw three equal channels; back to one (BT.601 luma)
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        color = np.round(luma).astype(rgb.dtype)[..., None]
    if alpha is not None:
        color = np.concatenate([color, alpha[..., None].astype(color.dtype)], axis=2)
    return color[..., 0] if color.shape[2] == 1 else color


def _encode(f, a, fmt):
    """Write the HxW[xC] array ``a`` to the open file ``f`` in ``fmt`` ('png', 'jpg' or 'webp')."""
    if a.dtype == np.uint16 and fmt == 'png' and a.ndim == 3:
        import cv2
        order = [0, 0, 0, 1] if a.shape[2] == 2 else [2, 1, 0, 3][:a.shape[2]]  # OpenCV has no gray + alpha
        ok, buf = cv2.imencode('.png', a[..., order])
        if not ok:
            raise SRKDError('OpenCV could not encode a 16-bit PNG')
        f.write(buf.tobytes())
        return
    if a.dtype == np.uint16 and fmt != 'png':
        a = np.round(a / 257.0).astype(np.uint8)  # JPEG and WebP hold 8 bits
    if fmt == 'jpg' and a.ndim == 3 and a.shape[2] in (2, 4):
        a = a[..., :-1]  # JPEG has no alpha
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[2] == 2:
        im = Image.fromarray(a[..., 0]).convert('LA')
        im.putalpha(Image.fromarray(a[..., 1]))
    else:
        im = Image.fromarray(a)
    extra = {'compress_level': 1} if fmt == 'png' else {'quality': QUALITY}
    im.save(f, format=FORMATS[fmt], **extra)


def write_image(path: str, a: np.ndarray, fmt: str) -> None:
    """Write an image through a temporary name and a rename (``sr_kd.atomic``)."""
    with atomic_path(path) as tmp, open(tmp, 'xb') as f:
        _encode(f, a, fmt)
