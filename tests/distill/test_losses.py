"""Losses against hand-computed values, their minima, where gradients go, and queue mechanics."""
import math

import pytest
import torch
import torch.nn.functional as F

from distill.core.errors import ConfigError
from distill.losses import LOSSES, PRETRAIN_METHODS, EmbeddingQueue, create_loss, loss_options


def _softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def _v(*rows):
    return torch.tensor(rows, dtype=torch.float32)


# -- hand-computed values on tiny tensors ---------------------------------------------------------------------

def test_seed_matches_hand_computation():
    loss = create_loss("seed", student_dim=2, teacher_dim=2, queue_size=4, tau_s=0.5, tau_t=0.25)
    loss.queue.push(_v([1, 0], [0, 1]))
    s, t = [1.0, 0.0], [0.6, 0.8]
    # logits: positive (with the teacher's embedding) first, then the two queued anchors
    ls = [(0.6) / 0.5, 1.0 / 0.5, 0.0 / 0.5]
    lt = [1.0 / 0.25, 0.6 / 0.25, 0.8 / 0.25]
    p_t, p_s = _softmax(lt), _softmax(ls)
    expected = -sum(pt * math.log(ps) for pt, ps in zip(p_t, p_s))
    got = loss(_v(s)[None], _v(t)[None])
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_compress_matches_hand_computation():
    loss = create_loss("compress", student_dim=2, teacher_dim=2, queue_size=4, tau=0.5)
    loss.teacher_queue.push(_v([1, 0], [0, 1]))
    loss.student_queue.push(_v([0, 1], [1, 0]))
    s, t = [1.0, 0.0], [0.6, 0.8]
    p_t = _softmax([0.6 / 0.5, 0.8 / 0.5])
    p_s = _softmax([0.0 / 0.5, 1.0 / 0.5])
    expected = sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s))
    got = loss(_v(s)[None], _v(t)[None], momentum=_v(s)[None])
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_compress_1q_uses_the_linear_map_and_the_teacher_queue():
    loss = create_loss("compress-1q", student_dim=3, teacher_dim=2, queue_size=4, tau=0.5)
    with torch.no_grad():
        loss.proj.weight.copy_(_v([1, 0, 0], [0, 0, 1]))  # keep coordinates 0 and 2
        loss.proj.bias.zero_()
    loss.teacher_queue.push(_v([1, 0], [0, 1]))
    s, t = [2.0, 5.0, 0.0], [0.6, 0.8]  # maps to [2, 0] -> normalised [1, 0]
    p_t = _softmax([0.6 / 0.5, 0.8 / 0.5])
    p_s = _softmax([1.0 / 0.5, 0.0 / 0.5])
    expected = sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s))
    assert loss(_v(s)[None], _v(t)[None]).item() == pytest.approx(expected, rel=1e-5)


def test_disco_matches_hand_computation():
    loss = create_loss("disco", student_dim=2, teacher_dim=2, queue_size=4, temperature=0.5, mse_weight=2.0)
    loss.queue.push(_v([1, 0]))
    q1, q2 = [1.0, 0.0], [0.0, 1.0]
    k2 = [0.0, 1.0]
    t1, t2 = [0.6, 0.8], [0.0, 1.0]
    logits = [0.0 / 0.5, 1.0 / 0.5]  # q1.k2 = 0 (positive), q1.queue = 1
    ce = -math.log(_softmax(logits)[0])
    mse = ((1 - 0.6) ** 2 + 0.8 ** 2) + 0.0
    student = torch.stack([_v(q1), _v(q2)])
    teacher = torch.stack([_v(t1), _v(t2)])
    got = loss(student, teacher, momentum=_v(k2)[None])
    assert got.item() == pytest.approx(ce + 2.0 * mse, rel=1e-5)


def test_disco_mse_is_summed_over_the_batch_as_in_the_official_code():
    """DisCo-pytorch main.py: CrossEntropyLoss() (batch mean) + MSELoss(reduction='sum') on both views."""
    torch.manual_seed(0)
    b, d = 6, 4
    student, teacher, key = torch.randn(2, b, d), torch.randn(2, b, d), torch.randn(1, b, d)
    loss = create_loss("disco", student_dim=d, teacher_dim=d, queue_size=8, temperature=0.2)
    norm = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    q, t, k = norm(student), norm(teacher), norm(key[0])
    logits = torch.cat([(q[0] * k).sum(1, keepdim=True), q[0] @ loss.queue.get().T], 1) / 0.2
    ce = torch.nn.functional.cross_entropy(logits, torch.zeros(b, dtype=torch.long))
    mse_sum = torch.nn.functional.mse_loss(q, t, reduction="sum")  # both views, every sample and dimension
    assert loss(student, teacher, key).item() == pytest.approx((ce + mse_sum).item(), rel=1e-5)
    # doubling the batch with the same samples doubles the MSE part, not the contrastive mean
    only = create_loss("disco", student_dim=d, teacher_dim=d, queue_size=8, only_mse=True)
    assert only(student.repeat(1, 2, 1), teacher.repeat(1, 2, 1), key.repeat(1, 2, 1)).item() == pytest.approx(
        2 * mse_sum.item(), rel=1e-5)


def test_mocov2_matches_hand_computation():
    loss = create_loss("mocov2", student_dim=2, teacher_dim=0, queue_size=4, temperature=0.5)
    loss.queue.push(_v([0.0, 1.0]))
    q, k = [3.0, 4.0], [1.0, 0.0]  # |q| = 5
    logits = [(3 / 5) / 0.5, (4 / 5) / 0.5]  # q.k, q.queue
    expected = -math.log(_softmax(logits)[0])
    assert loss(torch.stack([_v(q), _v(q)]), None, momentum=_v(k)[None]).item() == pytest.approx(expected, rel=1e-5)
    assert torch.equal(loss.queue.get()[-1], _v(k)[0])  # the key was enqueued


def test_simclr_matches_hand_computation():
    loss = create_loss("simclr", student_dim=2, teacher_dim=0, temperature=1.0)
    a1, b1, a2, b2 = [1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]  # unit vectors: views 1 and 2 of images a, b
    z = [a1, b1, a2, b2]
    dot = lambda u, v: u[0] * v[0] + u[1] * v[1]  # noqa: E731
    total = 0.0
    for i, pos in enumerate([2, 3, 0, 1]):
        others = [j for j in range(4) if j != i]
        logits = [dot(z[i], z[j]) for j in others]
        total += -math.log(_softmax(logits)[others.index(pos)])
    got = loss(torch.stack([_v(a1, b1), _v(a2, b2)]), None).item()
    assert got == pytest.approx(total / 4, rel=1e-5)


@pytest.mark.parametrize("name", PRETRAIN_METHODS)
def test_pretraining_losses_ignore_the_teacher(name):
    assert not LOSSES[name].needs_teacher
    loss, t, g = _random_setup(name)
    s = torch.randn(t.shape, generator=g)
    m = s[1:2] if loss.momentum_views else None
    state = {k: v.clone() for k, v in loss.state_dict().items()}
    first = loss(s, t, momentum=m).item()
    loss.load_state_dict(state)
    assert loss(s, None, momentum=m).item() == pytest.approx(first)


# -- minima ------------------------------------------------------------------------------------------------

def _random_setup(name, dim=8, n=6, queue=32, seed=0, **opts):
    g = torch.Generator().manual_seed(seed)
    if "queue_size" in loss_options(name):
        opts["queue_size"] = queue
    loss = create_loss(name, student_dim=dim, teacher_dim=dim, **opts)
    anchors = F.normalize(torch.randn(16, dim, generator=g), dim=1)
    for q in (getattr(loss, a) for a in ("queue", "teacher_queue", "student_queue") if hasattr(loss, a)):
        q.push(anchors)
    t = torch.randn(loss.views, n, dim, generator=g)
    return loss, t, g


@pytest.mark.parametrize("name,opts", [("seed", {"tau_s": 0.1, "tau_t": 0.1}), ("compress", {}), ("compress-1q", {}),
                                       ("regress", {})])
def test_loss_is_minimal_when_the_student_reproduces_the_teacher(name, opts):
    loss, t, g = _random_setup(name, **opts)
    if name == "compress-1q":
        with torch.no_grad():
            loss.proj.weight.copy_(torch.eye(8))
            loss.proj.bias.zero_()
    state = {k: v.clone() for k, v in loss.state_dict().items()}

    def value(s):
        loss.load_state_dict(state)  # the same queue for every evaluation
        return loss(s, t, momentum=s[:1]).item()

    best = value(t.clone())
    for _ in range(20):
        assert value(t + 0.3 * torch.randn(t.shape, generator=g)) > best
    if name != "seed":
        assert best == pytest.approx(0.0, abs=1e-5)  # KL of identical distributions; regress: 2 - 2 cos = 0


def test_disco_distillation_term_is_minimal_at_the_teacher():
    loss, t, g = _random_setup("disco")
    loss.queue.filled.zero_()  # no negatives: the contrastive term is exactly 0
    k = t[1:2].clone()
    assert loss(t.clone(), t, momentum=k).item() == pytest.approx(0.0, abs=1e-5)
    assert loss(t + 0.3 * torch.randn(t.shape, generator=g), t, momentum=k).item() > 1e-3


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_reach_only_the_student(name):
    loss, t, g = _random_setup(name)
    student = torch.randn(t.shape, generator=g, requires_grad=True)
    teacher = t.clone().requires_grad_(True) if loss.needs_teacher else None
    momentum = torch.randn(len(loss.momentum_views), t.shape[1], 8, generator=g, requires_grad=True)
    out = loss(student, teacher, momentum=momentum if loss.momentum_views else None)
    out.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert (teacher is None or teacher.grad is None) and momentum.grad is None
    assert all(not b.requires_grad for b in loss.buffers())


# -- queues ------------------------------------------------------------------------------------------------

def test_queue_wraps_in_fifo_order():
    q = EmbeddingQueue(3, 1)
    q.push(_v([0], [1]))
    assert q.get().flatten().tolist() == [0, 1] and int(q.filled) == 2
    q.push(_v([2], [3]))
    assert q.data.flatten().tolist() == [3, 1, 2] and int(q.ptr) == 1 and int(q.filled) == 3
    q.push(_v([4], [5], [6], [7]))  # more than the queue holds: the last 3 stay
    assert sorted(q.get().flatten().tolist()) == [5, 6, 7]


def test_a_queue_longer_than_the_data_never_uses_empty_slots():
    big = create_loss("seed", student_dim=4, teacher_dim=4, queue_size=1000)
    exact = create_loss("seed", student_dim=4, teacher_dim=4, queue_size=3)
    anchors = F.normalize(torch.randn(3, 4), dim=1)
    big.queue.push(anchors)
    exact.queue.push(anchors)
    s, t = torch.randn(1, 5, 4), torch.randn(1, 5, 4)
    assert big(s, t).item() == pytest.approx(exact(s, t).item(), rel=1e-6)


def test_empty_queue_gives_zero_loss_then_fills():
    loss = create_loss("compress", student_dim=4, teacher_dim=4, queue_size=10)
    s = torch.randn(1, 3, 4, requires_grad=True)
    out = loss(s, torch.randn(1, 3, 4), momentum=torch.randn(1, 3, 4))
    assert out.item() == 0.0 and out.requires_grad
    assert int(loss.teacher_queue.filled) == 3 == int(loss.student_queue.filled)


def test_compress_two_queues_stay_slot_aligned():
    loss = create_loss("compress", student_dim=2, teacher_dim=2, queue_size=5)
    for step in range(4):  # 4 pushes of 2 wrap a 5-slot queue
        t = torch.full((1, 2, 2), float(step))
        k = torch.full((1, 2, 2), float(step))
        loss(torch.randn(1, 2, 2), t + torch.tensor([1.0, 0.0]), momentum=k + torch.tensor([1.0, 0.0]))
    assert int(loss.teacher_queue.ptr) == int(loss.student_queue.ptr)
    assert torch.allclose(loss.teacher_queue.data, loss.student_queue.data)


def test_queues_are_buffers_that_follow_the_state_dict():
    loss = create_loss("seed", student_dim=4, teacher_dim=4, queue_size=8)
    loss.queue.push(torch.randn(3, 4))
    clone = create_loss("seed", student_dim=4, teacher_dim=4, queue_size=8)
    clone.load_state_dict(loss.state_dict())
    assert torch.equal(clone.queue.get(), loss.queue.get()) and int(clone.queue.ptr) == 3


def test_unknown_method_and_option_list_the_valid_ones():
    with pytest.raises(ConfigError, match="seed, compress, compress-1q, disco"):
        create_loss("byol", student_dim=2, teacher_dim=2)
    with pytest.raises(ConfigError, match="tau_s"):
        create_loss("seed", student_dim=2, teacher_dim=2, tau=0.1)
    with pytest.raises(ConfigError, match="dims differ"):
        create_loss("seed", student_dim=3, teacher_dim=2)


def test_regress_is_the_normalised_squared_distance():
    """SimReg (UCDvision/simreg simreg.py): mean over the batch of 2 - 2 cos(student, teacher)."""
    loss = create_loss("regress", student_dim=2, teacher_dim=2)
    s, t = _v([3.0, 4.0], [1.0, 0.0]), _v([0.0, 2.0], [-1.0, 0.0])
    expected = ((2 - 2 * 0.8) + (2 - 2 * -1.0)) / 2
    assert loss(s[None], t[None]).item() == pytest.approx(expected, rel=1e-6)
