"""sigmoid_focal_loss and its positive/negative terms against the seeds' worked values, torchvision and BCE."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops
from torch import Tensor

from lightning_retina.losses import RetinaNetLoss, sigmoid_focal_loss
from lightning_retina.losses._dtypes import upcast as _upcast
from lightning_retina.losses.focal import NO_ALPHA, check_focal_parameters

REDUCTIONS = ["none", "mean", "sum"]
ALPHA_GAMMA = [(0.25, 2.0), (0.5, 1.0), (0.75, 0.0), (-1.0, 2.0), (-1.0, 0.0), (0.25, 0.5)]


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# The focal loss's two elementwise terms, written separately as the reference that sigmoid_focal_loss must match
# (the package computes the loss in one expression; these were its public helpers before and are kept for the tests).
def _focal_term(logits: Tensor, alpha: float, gamma: float, positive: bool) -> Tensor:
    """Elementwise focal loss against target 1 (``-α (1-p)^γ log(p)``) or 0 (``-(1-α) p^γ log(1-p)``), in float32
    (float64 for float64 input); ``alpha=-1`` disables α-balancing. Raises ValueError for bad alpha / gamma."""
    check_focal_parameters(alpha, gamma)
    signed = -_upcast(logits) if positive else _upcast(logits)
    loss = F.softplus(signed)  # -log(sigmoid(x)) or -log(1 - sigmoid(x)), stable
    if gamma != 0:
        loss = loss * torch.exp(gamma * F.logsigmoid(signed))  # (1 - p)^γ or p^γ, finite gradient for any γ > 0
    if alpha == NO_ALPHA:
        return loss
    return loss * (alpha if positive else 1.0 - alpha)


def focal_positive_term(logits: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    return _focal_term(logits, alpha, gamma, positive=True)


def focal_negative_term(logits: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    return _focal_term(logits, alpha, gamma, positive=False)


def _random_logits_targets(soft: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(64, 7, generator=g) * 4
    targets = torch.rand(64, 7, generator=g)
    return logits, targets if soft else (targets > 0.7).float()


# Seed 000: "x=0.1 hard, x=0.9 easy; α and γ set to 1":
#   CE(0.1) = -log(0.1) = 2.30259...,   FL(0.1) = -(1 - 0.1) log(0.1) = 2.07233...
#   CE(0.9) = -log(0.9) = 0.105361...,  FL(0.9) = -(1 - 0.9) log(0.9) = 0.0105361...
@pytest.mark.parametrize(
    ("p_t", "ce", "fl"),
    [
        (0.1, -math.log(0.1), -(1 - 0.1) * math.log(0.1)),
        (0.9, -math.log(0.9), -(1 - 0.9) * math.log(0.9)),
    ],
)
def test_seed_worked_values(p_t: float, ce: float, fl: float) -> None:
    seed_values = {0.1: (2.302585, 2.07233), 0.9: (0.1053605, 0.01053605)}[p_t]
    assert (ce, fl) == pytest.approx(seed_values, rel=1e-5)
    # p_t as a positive (p = p_t, target 1, weight α = 1) and as a negative (p = 1 - p_t, target 0, weight 1 - α = 1).
    logits = torch.tensor([_logit(p_t), _logit(1 - p_t)], dtype=torch.float64)
    targets = torch.tensor([1.0, 0.0], dtype=torch.float64)
    got_ce = sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0)
    got_fl_pos = sigmoid_focal_loss(logits[:1], targets[:1], alpha=1, gamma=1)
    got_fl_neg = sigmoid_focal_loss(logits[1:], targets[1:], alpha=0, gamma=1)
    torch.testing.assert_close(got_ce, torch.tensor([ce, ce], dtype=torch.float64))
    torch.testing.assert_close(got_fl_pos, torch.tensor([fl], dtype=torch.float64))
    torch.testing.assert_close(got_fl_neg, torch.tensor([fl], dtype=torch.float64))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("alpha", "gamma"), ALPHA_GAMMA)
@pytest.mark.parametrize("soft", [False, True], ids=["hard_targets", "soft_targets"])
def test_matches_torchvision(alpha: float, gamma: float, reduction: str, soft: bool) -> None:
    logits, targets = _random_logits_targets(soft)
    expected = torchvision.ops.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    got = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("alpha", "gamma"), ALPHA_GAMMA)
def test_focal_is_at_most_bce(alpha: float, gamma: float) -> None:
    logits, targets = _random_logits_targets(soft=False)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert (sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma) <= bce + 1e-7).all()


@pytest.mark.parametrize(("alpha", "gamma"), ALPHA_GAMMA)
def test_ratio_to_ce_is_alpha_t_times_modulating_factor(alpha: float, gamma: float) -> None:
    logits, targets = _random_logits_targets(soft=False)
    logits = logits.double().clamp(-8, 8)  # keep CE away from 0 so the ratio is well defined
    targets = targets.double()
    p = torch.sigmoid(logits)
    p_t = torch.where(targets == 1, p, 1 - p)
    alpha_t = torch.ones_like(p) if alpha < 0 else torch.where(targets == 1, alpha, 1 - alpha)
    ce = -torch.log(p_t)
    ratio = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma) / ce
    torch.testing.assert_close(ratio, alpha_t * (1 - p_t) ** gamma)


def test_alpha_negative_gamma_zero_is_bce_with_gradients() -> None:
    logits, targets = _random_logits_targets(soft=True)
    x_ours = logits.clone().requires_grad_()
    x_ref = logits.clone().requires_grad_()
    ours = sigmoid_focal_loss(x_ours, targets, alpha=-1, gamma=0, reduction="mean")
    ref = F.binary_cross_entropy_with_logits(x_ref, targets, reduction="mean")
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(x_ours.grad, x_ref.grad)


@pytest.mark.parametrize(("alpha", "gamma"), ALPHA_GAMMA)
def test_positive_and_negative_terms_match_full_loss(alpha: float, gamma: float) -> None:
    logits, _ = _random_logits_targets(soft=False)
    ones, zeros = torch.ones_like(logits), torch.zeros_like(logits)
    torch.testing.assert_close(
        focal_positive_term(logits, alpha=alpha, gamma=gamma), sigmoid_focal_loss(logits, ones, alpha, gamma)
    )
    torch.testing.assert_close(
        focal_negative_term(logits, alpha=alpha, gamma=gamma), sigmoid_focal_loss(logits, zeros, alpha, gamma)
    )


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda x, t, g: sigmoid_focal_loss(x, t, alpha=0.25, gamma=g),
        lambda x, t, g: focal_positive_term(x, alpha=0.25, gamma=g) * t + focal_negative_term(x, 0.25, g) * (1 - t),
    ],
    ids=["sigmoid_focal_loss", "focal_terms"],
)
def test_large_logits_stay_finite(loss_fn, gamma: float) -> None:
    logits = torch.tensor([100.0, -100.0, 100.0, -100.0], requires_grad=True)
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0])  # confident right, confident right, confident wrong ×2
    loss = loss_fn(logits, targets, gamma)
    loss.sum().backward()
    assert torch.isfinite(loss).all()
    assert torch.isfinite(logits.grad).all()
    # confidently wrong: CE ≈ |logit| = 100, modulating factor ≈ 1
    torch.testing.assert_close(loss[2:], torch.tensor([0.75 * 100, 0.25 * 100]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda x, t: sigmoid_focal_loss(x, t),
        lambda x, t: focal_positive_term(x) * t + focal_negative_term(x) * (1 - t),
    ],
    ids=["sigmoid_focal_loss", "focal_terms"],
)
def test_half_precision_input_gives_float32(loss_fn, dtype: torch.dtype) -> None:
    logits, targets = _random_logits_targets(soft=False)
    half_logits = logits.to(dtype).requires_grad_()
    got = loss_fn(half_logits, targets.to(dtype))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, loss_fn(half_logits.detach().float(), targets), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got, loss_fn(logits, targets), rtol=2e-2, atol=2e-2)
    got.sum().backward()
    assert half_logits.grad.dtype == dtype


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_empty_input_reduces_to_zero_and_backpropagates(reduction: str) -> None:
    logits = torch.empty(0, 5, requires_grad=True)
    loss = sigmoid_focal_loss(logits, torch.empty(0, 5), reduction=reduction)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None
    assert logits.grad.shape == (0, 5)


def test_bad_reduction_raises() -> None:
    with pytest.raises(ValueError, match="Invalid reduction 'avg'"):
        sigmoid_focal_loss(torch.zeros(3), torch.zeros(3), reduction="avg")


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(4,\)"):
        sigmoid_focal_loss(torch.zeros(3), torch.zeros(4))


BAD_ALPHA_GAMMA = [
    ({"alpha": 1.5}, r"alpha must be in \[0, 1\] or -1 \(no alpha-balancing\), got 1.5"),
    ({"alpha": -0.5}, r"alpha must be in \[0, 1\] or -1 \(no alpha-balancing\), got -0.5"),
    ({"alpha": float("nan")}, r"alpha must be in \[0, 1\] or -1 \(no alpha-balancing\), got nan"),
    ({"gamma": -1.0}, r"gamma must be >= 0 and finite, got -1.0"),
    ({"gamma": float("inf")}, r"gamma must be >= 0 and finite, got inf"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_ALPHA_GAMMA)
@pytest.mark.parametrize("loss_fn", [sigmoid_focal_loss, focal_positive_term, focal_negative_term])
def test_bad_alpha_or_gamma_raise_naming_the_value(loss_fn, kwargs: dict, match: str) -> None:
    logits, targets = _random_logits_targets(soft=False)
    args = (logits, targets) if loss_fn is sigmoid_focal_loss else (logits,)
    with pytest.raises(ValueError, match=match):
        loss_fn(*args, **kwargs)


@pytest.mark.parametrize("alpha", [1.5, -0.5])
def test_torchvision_rejects_the_same_alphas(alpha: float) -> None:
    """The rule is torchvision's: alpha in [0, 1] or exactly -1."""
    logits, targets = _random_logits_targets(soft=False)
    with pytest.raises(ValueError, match="Invalid alpha value"):
        torchvision.ops.sigmoid_focal_loss(logits, targets, alpha=alpha)
    torchvision.ops.sigmoid_focal_loss(logits, targets, alpha=-1)  # the disable value is accepted by both


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_alpha_bounds_are_allowed_and_weight_one_side(alpha: float) -> None:
    logits, targets = _random_logits_targets(soft=False)
    loss = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=2.0)
    assert (loss >= 0).all() and (loss[targets == (1 - alpha)] == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"focal_alpha": 1.5}, r"focal_alpha must be in \[0, 1\] or -1 .*got 1.5"),
     ({"focal_alpha": -0.5}, r"focal_alpha must be in \[0, 1\] or -1 .*got -0.5"),
     ({"focal_gamma": -1.0}, r"focal_gamma must be >= 0 and finite, got -1.0")],
)  # fmt: skip
def test_retinanet_loss_rejects_bad_focal_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetinaNetLoss(**kwargs)
