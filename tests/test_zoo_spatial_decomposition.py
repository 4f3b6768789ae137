"""Spatial-structure and decomposition terms against their papers' equations, written out here with
loops, explicit pooling and torch.linalg.svd (the code under test uses an eigen-decomposition)."""
import copy
import itertools
import math

import pytest
import torch

from zoo_util import build, leaf_inputs, shapes



def close(value, ref, rtol=1e-5):
    assert math.isclose(float(value.detach()), float(ref), rel_tol=rtol, abs_tol=1e-8), (float(value.detach()), float(ref))


def test_pairwise_cosine_affinity_of_pooled_nodes():
    torch.manual_seed(30)
    fs, ft = [torch.randn(2, 3, 4, 4)], [torch.randn(2, 5, 4, 4)]

    def affinity(x):  # x: (C, 4, 4) -> nodes are 2x2 cell averages
        nodes = [x[:, i:i + 2, j:j + 2].double().mean(dim=(1, 2)) for i in (0, 2) for j in (0, 2)]
        return [[float(a @ b) / float(a.norm() * b.norm()) for b in nodes] for a in nodes]
    total = 0.0
    for n in range(2):
        a_s, a_t = affinity(fs[0][n]), affinity(ft[0][n])
        total += sum((a_s[i][j] - a_t[i][j]) ** 2 for i in range(4) for j in range(4)) / 16
    close(build('PairWiseLoss', shapes(fs), shapes(ft))(leaf_inputs(fs, ft)), total / 2)


def test_pairwise_released_variant_max_pools_a_fixed_grid():
    """Released code: window = 0.5 x the feature size (here 3x2 of a 6x4 map, so 2x2 nodes), max-pooled."""
    torch.manual_seed(31)
    fs, ft = [torch.randn(2, 3, 6, 4)], [torch.randn(2, 5, 6, 4)]

    def affinity(x):
        nodes = [x[:, i:i + 3, j:j + 2].double().amax(dim=(1, 2)) for i in (0, 3) for j in (0, 2)]
        return [[float(a @ b) / (float(a.norm()) + 1e-8) / (float(b.norm()) + 1e-8) for b in nodes] for a in nodes]
    total = 0.0
    for n in range(2):
        a_s, a_t = affinity(fs[0][n]), affinity(ft[0][n])
        total += sum((a_s[i][j] - a_t[i][j]) ** 2 for i in range(4) for j in range(4)) / 16
    close(build('PairWiseLoss', shapes(fs), shapes(ft), variant='released')(leaf_inputs(fs, ft)), total / 2)


@pytest.mark.parametrize('variant', ['paper', 'released'])
def test_pairwise_gradient_along_the_feature_only_when_the_norm_is_detached(variant):
    """Scaling the student's feature leaves a cosine unchanged: with the norm differentiated (paper) the
    gradient has no radial part; the released code detaches the norm, so it has one."""
    torch.manual_seed(32)
    fs, ft = [torch.randn(2, 3, 4, 4)], [torch.randn(2, 5, 4, 4)]
    d = leaf_inputs(fs, ft)
    build('PairWiseLoss', shapes(fs), shapes(ft), variant=variant, pool='max')(d).backward()
    radial = float((d.feats_s[0].grad * d.feats_s[0].detach()).sum())
    assert (abs(radial) < 1e-6) == (variant == 'paper'), radial


def test_fsp_flow_matrices_between_consecutive_levels():
    torch.manual_seed(31)
    fs = [torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4), torch.randn(2, 3, 4, 4)]
    ft = [torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4), torch.randn(2, 3, 4, 4)]

    def fsp(a, b):
        return [[[float((a[n, i].double() * b[n, j].double()).sum()) / 16 for j in range(b.shape[1])]
                 for i in range(a.shape[1])] for n in range(a.shape[0])]

    def mse(g, h):
        flat_g = [x for m in g for r in m for x in r]
        flat_h = [x for m in h for r in m for x in r]
        return sum((x - y) ** 2 for x, y in zip(flat_g, flat_h)) / len(flat_g)
    ref = mse(fsp(fs[0], fs[1]), fsp(ft[0], ft[1])) + mse(fsp(fs[1], fs[2]), fsp(ft[1], ft[2]))
    close(build('FSPLoss', shapes(fs), shapes(ft))(leaf_inputs(fs, ft)), ref)


def svd_vectors(x, k):
    """Top-k right singular vectors (C, k) and values of one feature seen as an (HW x C) matrix."""
    _, s, vh = torch.linalg.svd(x.double().flatten(1).t(), full_matrices=False)
    return vh[:k].t(), s[:k]


def teacher_sign(v):
    for j in range(v.shape[1]):
        if v[v[:, j].abs().argmax(), j] < 0:
            v[:, j] = -v[:, j]
    return v


def test_kdsvd_rbf_between_levels_of_aligned_singular_vectors():
    torch.manual_seed(32)
    k = 3
    fs = [torch.randn(2, 6, 4, 4), torch.randn(2, 5, 4, 4)]
    ft = [torch.randn(2, 6, 4, 4), torch.randn(2, 5, 4, 4)]
    total = 0.0
    for n in range(2):
        per_level = []
        for s, t in zip(fs, ft):
            vt, st = svd_vectors(t[n], k)
            vt = teacher_sign(vt)
            vs, _ = svd_vectors(s[n], k)
            aligned = torch.empty_like(vt)
            for j in range(k):  # the student vector of largest |cosine|, with its sign
                cos = [float(vs[:, i] @ vt[:, j]) for i in range(k)]
                i = max(range(k), key=lambda i: abs(cos[i]))
                aligned[:, j] = math.copysign(1.0, cos[i]) * vs[:, i]
            w = st / st.norm()
            per_level.append((aligned * w, vt * w))
        (vs1, vt1), (vs0, vt0) = per_level[1], per_level[0]
        for m, q, c in itertools.product(range(5), range(6), range(k)):
            rs = math.exp(-float(vs1[m, c] - vs0[q, c]) ** 2 / 8)
            rt = math.exp(-float(vt1[m, c] - vt0[q, c]) ** 2 / 8)
            total += (rs - rt) ** 2
    close(build('KDSVDLoss', shapes(fs), shapes(ft), k=k)(leaf_inputs(fs, ft)), total / 2, rtol=1e-4)


def bn(x, block, train):
    """Linear (no bias) then batch norm, from the block's weights (batch statistics or running ones)."""
    lin, norm = block
    y = x @ lin.weight.detach().double().t()
    if train:
        mean, var = y.mean(dim=0), y.var(dim=0, unbiased=False)
    else:
        mean, var = norm.running_mean.double(), norm.running_var.double()
    return (y - mean) / torch.sqrt(var + norm.eps) * norm.weight.detach().double() + norm.bias.detach().double()


def test_mhgd_graph_kl_and_estimation_loss():
    """The seed (KD_methods_with_TF, MHGD): Attention_head returns the raw products of keys and queries;
    softmax only inside the estimator (then drop-head, then ReLU'd features mixed per head) and the KL."""
    torch.manual_seed(33)
    heads = 2
    fs = [torch.randn(3, 4, 4, 4), torch.randn(3, 6, 4, 4)]
    ft = [torch.randn(3, 4, 4, 4), torch.randn(3, 6, 4, 4)]
    loss = build('MHGDLoss', shapes(fs), shapes(ft), num_head=heads)
    head = loss.graphs[0]
    for m in head.modules():  # non-trivial running statistics and affine parameters
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.2, 0.2)
    loss_state = copy.deepcopy(loss.state_dict())

    def first(s, t):
        vt = torch.stack([teacher_sign(svd_vectors(x, 1)[0])[:, 0] for x in t])
        vs = torch.stack([svd_vectors(x, 1)[0][:, 0] for x in s])
        return vs * torch.sign((vs * vt).sum(dim=1, keepdim=True)), vt
    (vs0, vt0), (vs1, vt1) = first(fs[0], ft[0]), first(fs[1], ft[1])
    d2 = (4 + 6) // 2

    def graph(v, v_prev, train):  # X_ah = sender (keys, level l) x receiver (queries, level l-1), raw
        key, query = bn(v, head.key, train), bn(v_prev, head.query, train)
        g = torch.empty(heads, 3, 3, dtype=torch.float64)
        for h, i, j in itertools.product(range(heads), range(3), range(3)):
            g[h, i, j] = key[i, h * d2:(h + 1) * d2] @ query[j, h * d2:(h + 1) * d2]
        return g
    g_t, g_s = graph(vt1, vt0, False), graph(vs1, vs0, False)
    mean = g_t.mean(dim=-1, keepdim=True)
    p, q = torch.softmax(torch.tanh(g_s - mean), -1), torch.softmax(torch.tanh(g_t - mean), -1)
    kl = float((p * (p.log() - q.log())).sum()) / 3
    light, heavy = (build('MHGDLoss', shapes(fs), shapes(ft), num_head=heads, loss_weight=w) for w in (1.0, 10.0))
    for term in (light, heavy):  # past the head's stage (head_iters 0): the graph KL alone, scaled by the weight
        term.load_state_dict(loss_state)
        close(term(leaf_inputs(fs, ft)), term.loss_weight * kl, rtol=1e-4)

    # the head's own step (its stage): the seed's MHA_loss on the teacher's vectors, plus 5e-4 x the
    # squared weights, before the step moves them
    decay = 5e-4 * sum(float(p.double().pow(2).sum()) for p in loss.graphs.parameters())
    torch.manual_seed(7)
    noise = torch.randn(heads, 3, 1, dtype=torch.float64)  # the drop-head's only random draw
    keep = (noise - noise.mean(dim=0, keepdim=True) > 0).double()
    g = torch.softmax(graph(vt1, vt0, True), dim=-1) * keep
    x = bn(vt0, head.est_in, True).clamp_min(0)  # batch norm then ReLU
    mixed = torch.cat([g[h] @ x for h in range(heads)], dim=1)  # heads side by side
    est = mixed @ head.est_out.weight.detach().double().t() + head.est_out.bias.detach().double()
    est = est / est.norm(dim=1, keepdim=True)
    aux = float((1 - (est * vt1).sum(dim=1)).mean())
    staged = build('MHGDLoss', shapes(fs), shapes(ft), num_head=heads, head_iters=1)
    staged.load_state_dict({**loss_state, 'head_steps': torch.tensor(0)})
    d = leaf_inputs(fs, ft)
    assert float(staged(d).detach()) == 0  # the head's stage: the KL weighs nothing
    torch.manual_seed(7)
    staged.own_step(d)
    assert math.isclose(staged.head_loss, aux + decay, rel_tol=1e-4)


def _mhgd_step(term, fs, ft, seed):
    """One training step as the model runs it: the term on the student, backward, then the head's step."""
    d = leaf_inputs(fs, ft)
    value = term(d)
    value.backward()
    torch.manual_seed(seed)
    term.own_step(d)
    return value, d


def _state(term):
    return {k: v.clone() for k, v in term.state_dict().items()}


def test_mhgd_head_trains_in_its_stage_then_is_frozen():
    """The seed's two stages: the head learns on the teacher alone while the KL is off; then the head is
    frozen (weights and batch-norm statistics) and the student follows the teacher's graph."""
    torch.manual_seed(36)
    fs = [torch.randn(6, 4, 4, 4), torch.randn(6, 6, 4, 4)]
    ft = [torch.randn(6, 4, 4, 4), torch.randn(6, 6, 4, 4)]
    term = build('MHGDLoss', shapes(fs), shapes(ft), num_head=2, head_iters=2)
    assert not any(p.requires_grad for p in term.graphs.parameters())  # never in the student's optimizer
    for step in range(2):
        before = _state(term)
        value, d = _mhgd_step(term, fs, ft, step)
        assert float(value) == 0 and all(float(f.grad.abs().max()) == 0 for f in d.feats_s)
        after = _state(term)
        for key in ('graphs.0.key.0.weight', 'graphs.0.est_out.weight', 'graphs.0.key.1.running_mean'):
            assert not torch.equal(before[key], after[key]), key
        assert int(term.head_steps) == step + 1
    before = _state(term)
    value, d = _mhgd_step(term, fs, ft, 2)
    assert float(value) > 0 and any(float(f.grad.abs().max()) > 0 for f in d.feats_s)
    after = _state(term)
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen: nothing of the head moves


def test_mhgd_resume_restores_the_head_stage_and_its_optimizer():
    torch.manual_seed(37)
    fs = [torch.randn(6, 4, 4, 4), torch.randn(6, 6, 4, 4)]
    ft = [torch.randn(6, 4, 4, 4), torch.randn(6, 6, 4, 4)]
    run = build('MHGDLoss', shapes(fs), shapes(ft), num_head=2, head_iters=4)
    for step in range(2):
        _mhgd_step(run, fs, ft, step)
    saved, own = copy.deepcopy(run.state_dict()), run.own_state()
    torch.manual_seed(99)  # a resumed process builds the term from other random weights
    resumed = build('MHGDLoss', shapes(fs), shapes(ft), num_head=2, head_iters=4)
    resumed.load_state_dict(saved)
    resumed.load_own_state(own)
    for step in range(2, 4):
        for term in (run, resumed):
            _mhgd_step(term, fs, ft, step)
    assert int(resumed.head_steps) == 4
    for key, value in run.state_dict().items():  # Adam's moments restored, else the third step differs
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_mhgd_drop_head_keeps_about_half_the_heads_and_at_least_one():
    from sr_kd.losses.decomposition import drop_heads
    torch.manual_seed(35)
    g = torch.softmax(torch.randn(8, 5, 5), dim=-1)
    kept = []
    for _ in range(400):
        out = drop_heads(g)
        rows_kept = (out.abs().sum(dim=-1) > 0)  # (heads, N): whole rows are kept or zeroed
        assert torch.equal(out[rows_kept], g[rows_kept])
        assert (rows_kept.sum(dim=0) >= 1).all() and (rows_kept.sum(dim=0) <= 7).all()
        kept.append(rows_kept.float())
    assert abs(float(torch.stack(kept).mean()) - 0.5) < 0.05


@pytest.mark.parametrize('kind', ['zero', 'rank_one'])
def test_symmetric_eigen_gradient_is_finite_on_degenerate_spectra(kind):
    from sr_kd.losses.decomposition import right_singular
    x = torch.zeros(2, 4, 3, 3) if kind == 'zero' else torch.ones(2, 4, 3, 3) * torch.arange(4.).view(1, 4, 1, 1)
    x.requires_grad_(True)
    _, v = right_singular(x, 3)
    (v * torch.randn_like(v)).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_symmetric_eigen_gradient_matches_torch_when_well_separated():
    from sr_kd.losses.decomposition import _SymEig
    torch.manual_seed(34)
    x = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(5, 2, dtype=torch.float64)

    def f(eig):
        lam, vec = eig(x @ x.mT)
        top = vec[..., -2:] * torch.sign(vec[..., :1, -2:])  # sign-invariant
        return (top * weights).sum() + lam[..., -1].sum()
    ours = torch.autograd.grad(f(_SymEig.apply), x)[0]
    theirs = torch.autograd.grad(f(torch.linalg.eigh), x)[0]
    assert torch.allclose(ours, theirs, atol=1e-10)
