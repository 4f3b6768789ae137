"""Where HR images come from: a folder (recursive) or the scikit-image sample photographs.

The reserved root ``skimage`` lets the embedded default train on photographs that ship with a
dependency, so a fresh clone needs no download; changing only the path switches to real data.
"""
import os
from typing import Iterable, List, Optional

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


def list_hr_images(root: str, names: Optional[Iterable[str]] = None) -> List[str]:
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
