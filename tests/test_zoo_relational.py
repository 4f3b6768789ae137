"""Relations over the batch against their papers' equations, written out with loops in float64."""
import itertools
import math

import pytest
import torch

from zoo_util import build, leaf_inputs, random_feats, shapes



@pytest.fixture
def feats():
    return random_feats(20, (4, 3, 4, 4), (4, 5, 4, 4))


def close(value, ref, rtol=1e-5):
    assert math.isclose(float(value.detach()), float(ref), rel_tol=rtol, abs_tol=1e-8), (float(value.detach()), float(ref))


def vecs(f):
    return [x.flatten().double() for x in f]


def huber(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def test_sp_row_normalised_gram(feats):
    fs, ft = feats

    def gram(f):
        v = vecs(f)
        g = [[float(a @ b) for b in v] for a in v]
        return [[x / math.sqrt(sum(y * y for y in row)) for x in row] for row in g]

    def sp(s, t):
        gs, gt = gram(s), gram(t)
        n = len(gs)
        return sum((gs[i][j] - gt[i][j]) ** 2 for i in range(n) for j in range(n)) / n ** 2
    close(build('SPLoss', shapes(fs), shapes(ft))(leaf_inputs(fs, ft)), sum(sp(s, t) for s, t in zip(fs, ft)))


def test_cc_taylor_expansion_of_gaussian_rbf(feats):
    fs, ft = feats
    gamma, order = 0.4, 2

    def corr(f):
        e = [v / v.norm() for v in vecs(f)]
        return [[sum(math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * float(a @ b) ** p
                     for p in range(order + 1)) for b in e] for a in e]

    def cc(s, t):
        cs, ct = corr(s), corr(t)
        n = len(cs)
        return sum((cs[i][j] - ct[i][j]) ** 2 for i in range(n) for j in range(n)) / n ** 2
    close(build('CCLoss', shapes(fs), shapes(ft))(leaf_inputs(fs, ft)), sum(cc(s, t) for s, t in zip(fs, ft)))


def test_cc_high_order_approaches_the_rbf_kernel(feats):
    """The Taylor series converges to exp(-gamma ||e_i - e_j||^2) for unit vectors."""
    from sr_kd.losses.relational import CCLoss
    fs, _ = feats
    e = torch.nn.functional.normalize(fs[0].flatten(1).double(), dim=1)
    rbf = torch.exp(-0.4 * torch.cdist(e, e) ** 2)
    assert torch.allclose(CCLoss(p_order=12).correlation(fs[0].double()), rbf, atol=1e-8)


def test_rkd_distance_and_angle(feats):
    fs, ft = feats

    def distances(v):
        n = len(v)
        d = [[float((v[i] - v[j]).norm()) if i != j else 0.0 for j in range(n)] for i in range(n)]
        mean = sum(map(sum, d)) / (n * (n - 1))
        return [[x / mean for x in row] for row in d]

    def angles(v):
        n = len(v)
        out = {}
        for a, b, c in itertools.product(range(n), repeat=3):
            eb, ec = v[b] - v[a], v[c] - v[a]
            nb, nc = float(eb.norm()), float(ec.norm())
            out[a, b, c] = float(eb @ ec) / (nb * nc) if nb > 0 and nc > 0 else 0.0
        return out

    def rkd(s, t):
        vs, vt = vecs(s), vecs(t)
        n = len(vs)
        ds, dt = distances(vs), distances(vt)
        dist = sum(huber(ds[i][j], dt[i][j]) for i in range(n) for j in range(n)) / n ** 2
        a_s, a_t = angles(vs), angles(vt)
        angle = sum(huber(a_s[k], a_t[k]) for k in a_s) / n ** 3
        return 25 * dist + 50 * angle
    close(build('RKDLoss', shapes(fs), shapes(ft))(leaf_inputs(fs, ft)), sum(rkd(s, t) for s, t in zip(fs, ft)))


def test_pkt_kl_between_conditional_probabilities(feats):
    fs, ft = feats
    eps = 1e-7

    def probs(f):
        v = [x / (x.norm() + eps) for x in vecs(f)]
        sim = [[(float(a @ b) + 1) / 2 for b in v] for a in v]
        return [[x / sum(row) for x in row] for row in sim]

    def pkt(s, t):
        ps, pt = probs(s), probs(t)
        n = len(ps)
        return sum(pt[i][j] * math.log((pt[i][j] + eps) / (ps[i][j] + eps)) for i in range(n) for j in range(n)) / n ** 2
    close(build('PKTLoss', shapes(fs), shapes(ft))(leaf_inputs(fs, ft)), sum(pkt(s, t) for s, t in zip(fs, ft)))


@pytest.mark.parametrize('weights', [[1, 1], [1, 0], [0, 0], [0.5, 2]])
def test_irg_vertex_edge_transformation(weights):
    torch.manual_seed(21)
    fs = [torch.randn(3, 4, 4, 4), torch.randn(3, 4, 4, 4)]
    ft = [torch.randn(3, 8, 4, 4), torch.randn(3, 4, 4, 4)]  # teacher widths differ between levels
    sr_s, sr_t = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)

    def edges(f):
        v = vecs(f)
        d = [[float(((a - b) ** 2).sum()) for b in v] for a in v]
        top = max(map(max, d))
        return [[x / top for x in row] for row in d]

    def mse(a, b):
        return sum((x - y) ** 2 for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / (len(a) * len(a[0]))

    def tran(a, b):
        if a.shape[1] > b.shape[1]:  # average adjacent channel pairs of the wider level (seed)
            a = (a[:, 0::2] + a[:, 1::2]) / 2
        d = [float(((x - y) ** 2).sum()) for x, y in zip(vecs(a), vecs(b))]
        return [x / max(d) for x in d]
    vert = float(((sr_s.double() - sr_t.double()) ** 2).mean())
    w0, w1 = weights  # level l's weight scales its edges and the transformation from l-1 to l
    edge = (w0 * mse(edges(fs[0]), edges(ft[0])) + w1 * mse(edges(fs[1]), edges(ft[1]))) / 2
    ts, tt = tran(fs[0], fs[1]), tran(ft[0], ft[1])
    tr = w1 * sum((x - y) ** 2 for x, y in zip(ts, tt)) / 3
    ref = 0.1 * vert + 5 * edge + 5 * tr
    d = leaf_inputs(fs, ft, sr_s=sr_s.requires_grad_(True), sr_t=sr_t)
    close(build('IRGLoss', shapes(fs), shapes(ft), level_weights=weights)(d), ref)


def test_crd_infonce_against_the_batch_and_the_filled_memory():
    """Each anchor's positive against the other patches of the batch and the memory's real entries only
    (it starts empty); the batch then enters the FIFO queue, which wraps and keeps the newest."""
    torch.manual_seed(22)
    fs, ft = [torch.randn(3, 4, 4, 4)], [torch.randn(3, 6, 4, 4)]
    loss = build('CRDLoss', shapes(fs), shapes(ft), nce_k=5, feat_dim=5)
    head = loss.heads[0]

    def embed(linear, f):
        z = f.double().mean(dim=(2, 3)) @ linear.weight.detach().double().t() + linear.bias.detach().double()
        return z / z.norm(dim=1, keepdim=True)

    def nce(anchor, pos, bank):
        total = 0.0
        for i, a in enumerate(anchor):
            logits = [float(a @ p) / 0.07 for p in pos] + [float(a @ b) / 0.07 for b in bank]
            total += -logits[i] + math.log(sum(math.exp(x) for x in logits))
        return total / len(anchor)
    queue_s, queue_t = [], []  # every embedding pushed so far, oldest first
    for step in range(3):
        batch_s = [f + step for f in fs]
        zs, zt = embed(head.embed_s, batch_s[0]), embed(head.embed_t, ft[0])
        ref = nce(zt, zs, queue_s[-5:]) + nce(zs, zt, queue_t[-5:])
        close(loss(leaf_inputs(batch_s, ft)), ref)
        queue_s += list(zs)
        queue_t += list(zt)
        assert int(head.memory_s.filled) == min(len(queue_s), 5)
        held = head.memory_s.negatives().double()
        for want in queue_s[-5:]:  # the newest five, whatever slot each landed in
            assert int(torch.isclose(held, want, atol=1e-6).all(dim=1).sum()) == 1


def test_crd_memory_is_saved_and_restored():
    torch.manual_seed(23)
    fs, ft = [torch.randn(3, 4, 4, 4)], [torch.randn(3, 6, 4, 4)]
    loss = build('CRDLoss', shapes(fs), shapes(ft), nce_k=8, feat_dim=5)
    loss(leaf_inputs(fs, ft))
    state = loss.state_dict()
    assert {'heads.0.memory_s.bank', 'heads.0.memory_s.ptr', 'heads.0.memory_s.filled'} <= set(state)
    fresh = build('CRDLoss', shapes(fs), shapes(ft), nce_k=8, feat_dim=5)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.heads[0].memory_t.negatives(), loss.heads[0].memory_t.negatives())
    assert int(fresh.heads[0].memory_t.filled) == 3
