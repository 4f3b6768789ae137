"""Where HR images come from: a folder (recursive) or the scikit-image sample photographs.

The reserved root ``skimage`` lets the embedded default train on photographs that ship with a
dependency, so a fresh clone needs no download; changing only the path switches to real data.
"""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from sr_kd.errors import SRKDError

IMAGE_EXTS = ('.png', '.bmp', '.jpg', '.jpeg', '.tif', '.tiff', '.webp', '.ppm')
SKIMAGE_ROOT = 'skimage'
# Natural photographs bundled with scikit-image (no network needed); chelsea and coffee are held out
# for validation in options/imdn_kd.yml.
SKIMAGE_TRAIN = ('astronaut', 'rocket', 'immunohistochemistry', 'hubble_deep_field', 'motorcycle_left',
                 'motorcycle_right', 'camera', 'brick', 'grass', 'gravel', 'coins', 'moon', 'retina')
SKIMAGE_VAL = ('chelsea', 'coffee')


def _skimage_path(name):
    import skimage.data
    folder = os.path.dirname(skimage.data.__file__)
    for ext in ('.png', '.jpg'):
        path = os.path.join(folder, name + ext)
        if os.path.isfile(path):
            return path
    alias = {'immunohistochemistry': 'ihc'}.get(name)
    if alias:
        return _skimage_path(alias)
    raise SRKDError(f'scikit-image has no bundled sample image {name!r}')


def list_hr_images(root, names=None):
    """Paths of the HR images under ``root`` (sorted, recursive), or of scikit-image samples."""
    if root == SKIMAGE_ROOT:
        return [_skimage_path(n) for n in (names or SKIMAGE_TRAIN)]
    if not os.path.isdir(root):
        raise SRKDError(f'data folder not found: {root}')
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                   if f.lower().endswith(IMAGE_EXTS))
    if names:
        wanted = set(names)
        paths = [p for p in paths if os.path.splitext(os.path.basename(p))[0] in wanted]
    if not paths:
        raise SRKDError(f'no images in data folder {root}')
    return paths


def image_size(path):
    """(width, height) from the file header, without decoding; SRKDError if unreadable."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise SRKDError(f'cannot read image {path}: {e}') from e


def read_rgb_uint8(path):
    """HxWx3 uint8 RGB (gray, palette, RGBA and 16-bit converted); SRKDError if unreadable."""
    try:
        with Image.open(path) as im:
            if im.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
                arr = np.asarray(im, dtype=np.float64)
                arr = np.round(arr / (65535.0 if arr.max() > 255 else 255.0) * 255.0).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=2)
            return np.asarray(im.convert('RGB'))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise SRKDError(f'cannot read image {path}: {e}') from e
