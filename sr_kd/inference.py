"""Forward passes for whole images, tiles and IMDN's adaptive cropping, in one place.

Evaluation, validation and the ``sr-kd upscale`` CLI all call ``upscale``.
"""
import torch


def adaptive_crop_forward(model, x, overlap=32, multiple=4):
    """IMDN_AS's adaptive cropping (Hui et al. 2019): four overlapping corner patches of about half the
    image plus ``overlap``, each a multiple of ``multiple`` on both sides, run as one batch; each output
    quadrant is taken from its own patch. The model must keep the input size (IMDN_AS does)."""
    _, _, h, w = x.shape
    hh, hw = h // 2, w // 2
    ph, pw = hh + overlap - (hh + overlap) % multiple, hw + overlap - (hw + overlap) % multiple
    if ph > h or pw > w:
        raise ValueError(f'image {w}x{h} is too small for adaptive cropping (overlap {overlap})')
    patches = torch.cat([x[:, :, :ph, :pw], x[:, :, :ph, w - pw:], x[:, :, h - ph:, :pw], x[:, :, h - ph:, w - pw:]])
    o = model(patches)
    s = o.shape[2] // ph  # 1 for IMDN_AS; a fixed-scale model works too
    out = x.new_zeros(x.shape[0], o.shape[1], h * s, w * s)
    out[:, :, :hh * s, :hw * s] = o[0:1, :, :hh * s, :hw * s]
    out[:, :, :hh * s, hw * s:] = o[1:2, :, :hh * s, (pw - w + hw) * s:]
    out[:, :, hh * s:, :hw * s] = o[2:3, :, (ph - h + hh) * s:, :hw * s]
    out[:, :, hh * s:, hw * s:] = o[3:4, :, (ph - h + hh) * s:, (pw - w + hw) * s:]
    return out


def upscale(model, img, adaptive=False):
    """Run ``model`` on a 1xCxHxW float tensor in [0, 1]; returns the SR tensor (not clamped).

    ``adaptive``: IMDN_AS's adaptive cropping when the size is not a multiple of 4.
    """
    with torch.inference_mode():
        if adaptive and (img.shape[2] % 4 or img.shape[3] % 4):
            return adaptive_crop_forward(model, img)
        return model(img)
