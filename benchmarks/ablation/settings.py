"""What the ablation trains: the settings (losses, ALWA, focal γ/α), grouped with the baseline each is compared to."""

from __future__ import annotations

from dataclasses import dataclass

CLS_LOSSES = ("bce", "balanced_bce", "focal")
BOX_LOSSES = ("l1", "smooth_l1", "ciou")
# α of the α-balanced CE: the best value for CE in Lin et al. 2017, Table 1a (31.1 AP). With γ = 0 the focal loss is
# exactly this loss (the same code path), so it is also the γ = 0 row of the γ sweep.
BALANCED_BCE_ALPHA = 0.75
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0  # the paper's (and the module's) focal loss: the baseline
# The γ sweep with the α the paper pairs with each γ (Lin et al. 2017, Table 1b); γ = 0 (α 0.75) is balanced_bce,
# γ = 2 (α 0.25) the baseline.
GAMMA_SWEEP = ((0.5, 0.5), (1.0, 0.25), (2.0, 0.25), (5.0, 0.25))


@dataclass(frozen=True)
class Setting:
    """One trained configuration.

    Attributes:
        cls_loss: ``"bce"``, ``"balanced_bce"`` or ``"focal"``.
        reg_loss: a box loss of :data:`lightning_retina.losses.retinanet.REG_LOSSES`.
        alwa: ``"none"`` or ``"alwa"`` (the official rule: ALWA_2, the std statistic, first window at step 0).
        gamma: focal γ (``None``: the paper's 2.0).
        alpha: focal α (``None``: the paper's 0.25; balanced_bce uses :data:`BALANCED_BCE_ALPHA`).
    """

    cls_loss: str
    reg_loss: str
    alwa: str = "none"
    gamma: float | None = None
    alpha: float | None = None

    @property
    def name(self) -> str:
        """File-name friendly, e.g. ``focal-smooth_l1-none`` or ``focal-smooth_l1-none-g0.5-a0.5``."""
        focal = "" if self.gamma is None else f"-g{self.gamma:g}-a{self.alpha:g}"
        return f"{self.cls_loss}-{self.reg_loss}-{self.alwa}{focal}"

    @property
    def label(self) -> str:
        """The table's description of what differs from the module's defaults."""
        parts = [self.cls_loss, self.reg_loss]
        if self.gamma is not None:
            parts.append(f"γ={self.gamma:g}, α={self.alpha:g}")
        if self.alwa != "none":
            parts.append("ALWA")
        return " + ".join(parts)

    def module_overrides(self) -> dict[str, object]:
        """The :class:`~lightning_retina.RetinaNetModule` arguments of this setting."""
        overrides: dict[str, object] = {"cls_loss": self.cls_loss, "reg_loss": self.reg_loss}
        if self.cls_loss == "balanced_bce":
            overrides["focal_alpha"] = BALANCED_BCE_ALPHA
        if self.gamma is not None:
            overrides.update(focal_gamma=self.gamma, focal_alpha=self.alpha)
        return overrides


BASELINE = Setting("focal", "smooth_l1")


@dataclass(frozen=True)
class Group:
    """Rows of the table compared with one baseline (which is one of them)."""

    title: str
    settings: tuple[Setting, ...]
    baseline: Setting = BASELINE


def build_groups(only: str | None = None, gamma_sweep: bool = True, smoke: bool = False) -> list[Group]:
    """The ablation's groups, every one compared with focal + smooth-L1 without ALWA (trained once).

    - classification loss: bce, balanced_bce (α 0.75), focal (α 0.25, γ 2), each with smooth-L1;
    - box loss × ALWA: l1, smooth_l1, ciou, each without and with ALWA (focal classification);
    - focal γ sweep (``gamma_sweep``): γ 0.5 / 1 / 5 with the paper's α (γ 0 is balanced_bce, γ 2 the baseline).

    Args:
        only: ``"cls"``, ``"reg"`` or ``"gamma"`` for one group; ``"baseline"`` for the baseline alone (its spreads
            and plateau: the check that a recipe converges, before the grid is paid for); ``None`` for all.
        gamma_sweep: include the γ sweep when ``only`` is ``None``.
        smoke: two settings only (the baseline and smooth-L1 with ALWA; the baseline alone with ``"baseline"``), for
            the test.
    """
    if only == "baseline":
        return [Group("baseline", (BASELINE,))]
    if smoke:
        return [Group("box loss × ALWA", (BASELINE, Setting("focal", "smooth_l1", "alwa")))]
    groups = []
    if only in (None, "cls"):
        groups.append(Group("classification loss", tuple(Setting(c, "smooth_l1") for c in CLS_LOSSES)))
    if only in (None, "reg"):
        settings = tuple(Setting("focal", reg, alwa) for reg in BOX_LOSSES for alwa in ("none", "alwa"))
        groups.append(Group("box loss × ALWA", settings))
    if only == "gamma" or (only is None and gamma_sweep):
        focal = (BASELINE if (g, a) == (FOCAL_GAMMA, FOCAL_ALPHA) else Setting("focal", "smooth_l1", gamma=g, alpha=a)
                 for g, a in GAMMA_SWEEP)
        sweep = (Setting("balanced_bce", "smooth_l1"), *focal)
        groups.append(Group("focal γ (α as in the paper's Table 1b)", sweep))
    return groups


def unique_settings(groups: list[Group]) -> list[Setting]:
    """Each setting once, in table order (the baseline is in every group but trained once)."""
    return list(dict.fromkeys(s for g in groups for s in g.settings))
