"""Per-position and per-map terms against their papers' equations, written out here independently
(loops and explicit sums in float64) on small tensors."""
import math

import pytest
import torch

from zoo_util import build, leaf_inputs, random_feats, shapes


@pytest.fixture
def feats():
    return random_feats(10, (3, 4, 4, 4), (3, 4, 4, 4))


def close(value, ref, rtol=1e-5):
    assert torch.allclose(value.detach().double(), torch.as_tensor(ref, dtype=torch.float64), rtol=rtol, atol=1e-7), \
        (float(value.detach()), float(ref))


def conv1x1(conv, x):
    """Apply a 1x1 convolution from its weights: y[o] = sum_c W[o, c] x[c] + b[o]."""
    w = conv.weight.detach().double()[:, :, 0, 0]
    y = torch.einsum('oc,nchw->nohw', w, x.double())
    return y + conv.bias.detach().double().view(1, -1, 1, 1) if conv.bias is not None else y


def test_fitnet_is_mse_after_the_regressor():
    torch.manual_seed(11)
    fs, ft = [torch.randn(3, 4, 4, 4)], [torch.randn(3, 6, 4, 4)]
    loss = build('FitNetLoss', shapes(fs), shapes(ft))
    ref = ((conv1x1(loss.connectors[0], fs[0]) - ft[0].double()) ** 2).mean()
    close(loss(leaf_inputs(fs, ft)), ref)


def test_at_normalised_attention_maps(feats):
    fs, ft = feats

    def att(f):
        maps = []
        for x in f.double():
            q = sum(x[c].abs() ** 2 for c in range(x.shape[0])) / x.shape[0]
            maps.append(q.flatten() / math.sqrt(float((q ** 2).sum())))
        return torch.stack(maps)
    ref = sum(((att(s) - att(t)) ** 2).mean() for s, t in zip(fs, ft))
    close(build('ATLoss', shapes(fs), shapes(ft))(leaf_inputs(fs, ft)), ref)


def test_ft_l1_between_factors(feats):
    fs, ft = feats

    def factor(f):
        q = (f.double() ** 2).mean(dim=1).flatten(1)
        return q / q.norm(dim=1, keepdim=True)
    ref = sum((factor(s) - factor(t)).abs().mean() for s, t in zip(fs, ft))
    close(build('FTLoss', shapes(fs), shapes(ft))(leaf_inputs(fs, ft)), ref)


def test_nst_mmd_polynomial_kernel():
    torch.manual_seed(12)
    fs, ft = [torch.randn(2, 3, 4, 4)], [torch.randn(2, 5, 4, 4)]

    def mmd(s, t):
        s = [x.flatten() / x.norm() for x in s.double()]
        t = [x.flatten() / x.norm() for x in t.double()]
        k = lambda a, b: float(a @ b) ** 2  # noqa: E731
        return (sum(k(a, b) for a in t for b in t) / len(t) ** 2 + sum(k(a, b) for a in s for b in s) / len(s) ** 2
                - 2 * sum(k(a, b) for a in s for b in t) / (len(s) * len(t)))
    ref = sum(mmd(fs[0][n], ft[0][n]) for n in range(2)) / 2
    close(build('NSTLoss', shapes(fs), shapes(ft))(leaf_inputs(fs, ft)), ref)


def test_ab_alternative_l2_with_margin(feats):
    fs, ft = feats
    m = 1.0

    def crit(s, t):
        total = 0.0
        for a, b in zip(s.double().flatten().tolist(), t.double().flatten().tolist()):
            if b > 0:
                total += (a - m) ** 2 if a <= m else 0.0
            else:
                total += (a + m) ** 2 if a > -m else 0.0
        return total / s.numel()
    ref = 0.5 * crit(fs[0], ft[0]) + 1.0 * crit(fs[1], ft[1])  # weights 2^(i-n+1)
    close(build('ABLoss', shapes(fs), shapes(ft), connector='identity')(leaf_inputs(fs, ft)), ref)


def test_ab_is_zero_beyond_the_margin(feats):
    _, ft = feats
    fs = [torch.where(t > 0, 1.5, -1.5) for t in ft]
    assert build('ABLoss', shapes(fs), shapes(ft), connector='identity')(leaf_inputs(fs, ft)) == 0


def test_ofd_margin_and_partial_l2(feats):
    fs, ft = feats

    def ofd(s, t):
        s, t = s.double(), t.double()
        target = t.clone()
        for c in range(t.shape[1]):
            neg = t[:, c][t[:, c] < 0]
            margin = neg.mean() if len(neg) else torch.tensor(0.0, dtype=torch.float64)
            target[:, c] = torch.maximum(t[:, c], margin)
        keep = ~((s <= target) & (target <= 0))
        return ((s - target) ** 2 * keep).sum() / s.numel()
    ref = sum(ofd(s, t) for s, t in zip(fs, ft))
    close(build('OFDLoss', shapes(fs), shapes(ft), connector='identity')(leaf_inputs(fs, ft)), ref)


def test_afd_attention_weighted_channel_distances(feats):
    fs, ft = feats
    loss = build('AFDLoss', shapes(fs), shapes(ft))
    ref = 0.0
    for i, (s, t) in enumerate(zip(fs, ft)):
        conv1, _, conv2 = loss.attention[i].net
        for n in range(s.shape[0]):
            pooled = t[n].double().mean(dim=(1, 2))
            hidden = torch.clamp(conv1.weight.detach().double()[:, :, 0, 0] @ pooled + conv1.bias.detach().double(), min=0)
            rho = torch.sigmoid(conv2.weight.detach().double()[:, :, 0, 0] @ hidden + conv2.bias.detach().double())
            rho = rho / rho.sum()
            for c in range(s.shape[1]):
                a = s[n, c].double() / (s[n, c].double().norm() + 1e-6)
                b = t[n, c].double() / (t[n, c].double().norm() + 1e-6)
                ref += float(rho[c] * ((a - b) ** 2).mean()) / s.shape[0]
    close(loss(leaf_inputs(fs, ft)), ref)


def test_vid_gaussian_negative_log_likelihood():
    torch.manual_seed(13)
    fs, ft = [torch.randn(2, 4, 4, 4)], [torch.randn(2, 6, 4, 4)]
    loss = build('VIDLoss', shapes(fs), shapes(ft))
    head = loss.heads[0]
    c1, _, c2, _, c3 = head.regressor
    mu = conv1x1(c3, conv1x1(c2, conv1x1(c1, fs[0]).clamp(min=0)).clamp(min=0))
    var = torch.log1p(torch.exp(head.alpha.detach().double())) + 1e-5
    assert torch.allclose(var.float(), torch.full((6,), 5.0), atol=1e-5)  # the paper's initial variance
    nll = 0.5 * (torch.log(var).view(1, -1, 1, 1) + (mu - ft[0].double()) ** 2 / var.view(1, -1, 1, 1))
    close(loss(leaf_inputs(fs, ft)), nll.mean())


def test_afd_attention_starts_as_the_seeds():
    """The seed (Knowledge-Distillation-Zoo, afd.py): kaiming normal (fan_out, ReLU gain) and zero biases."""
    torch.manual_seed(14)
    f = [torch.randn(2, 256, 2, 2)]
    loss = build('AFDLoss', shapes(f), shapes(f))
    for conv in (loss.attention[0].net[0], loss.attention[0].net[2]):
        fan_out = conv.weight.shape[0]  # x 1 x 1 kernel
        assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_out), rel=0.03)
        assert abs(float(conv.weight.detach().mean())) < 0.1 * math.sqrt(2 / fan_out)
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
