"""ALWA callback: the pure rule, and the weights it sets inside real ``Trainer`` runs against the official rule."""

import json
import math
import pickle
import random
import statistics
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader

from lightning_retina.callbacks import ALWA
from lightning_retina.callbacks._alwa_rule import alwa_update, window_moments, window_statistic

# Three windows of 4 steps. With record="weighted", statistic="std": window 1 cls fluctuates more -> w drops;
# window 2 the *weighted* cls fluctuates less -> w kept (the raw one more -> "raw" changes w); window 3 the
# weighted cls fluctuates slightly more -> w is recomputed from the statistics and goes *up*.
CLS = [1.2, 0.8, 1.1, 0.9, 1.0, 0.8, 0.9, 0.7, 0.9, 0.6, 0.85, 0.55]
REG = [0.5, 0.4, 0.6, 0.5, 0.5, 0.35, 0.55, 0.4, 0.40, 0.30, 0.42, 0.33]
BATCHES_PER_EPOCH = 6
EPOCHS = 2


def official_alwa(cls_by_rank, reg_by_rank, window, statistic="std", record="weighted"):
    """Transcription of the official rule (ywx-hub/ALWA, anchor_head.py), the window pooled over ranks.

    Returns the classification weight in effect at each step, the ``(S_cls, S_reg)`` of each window and the
    final weight.
    """
    w, hist_cls, hist_reg, seen, stats = 1.0, [], [], [], []
    for step in range(len(cls_by_rank[0])):
        seen.append(w)
        for cls, reg in zip(cls_by_rank, reg_by_rank):
            hist_cls.append(cls[step] * w if record == "weighted" else cls[step])
            hist_reg.append(reg[step])
        if (step + 1) % window == 0:
            s_cls, s_reg = statistics.stdev(hist_cls), statistics.stdev(hist_reg)
            if statistic == "mean+std":
                s_cls, s_reg = s_cls + statistics.mean(hist_cls), s_reg + statistics.mean(hist_reg)
            if s_cls > s_reg:
                w = 1 - (s_cls - s_reg) / s_cls
            hist_cls, hist_reg = [], []
            stats.append((s_cls, s_reg))
    return seen, stats, w


class ToyDetector(LightningModule):
    """Follows the weighted-loss contract with prescribed raw losses and a real parameter and backward.

    Args:
        losses: loss key -> one sequence per rank -> one value per step.
        results_dir: if given, each rank writes its seen weights there at the end of training (for DDP tests).
    """

    def __init__(self, losses, batches_per_epoch=BATCHES_PER_EPOCH, results_dir=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.losses = losses
        self.batches_per_epoch = batches_per_epoch
        self.results_dir = results_dir
        self.loss_weights = {key: 1.0 for key in losses}
        self.seen_weights = []  # loss_weights at each training_step

    def train_dataloader(self):
        return DataLoader(torch.zeros(self.batches_per_epoch, 1), batch_size=1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def training_step(self, batch, batch_idx):
        step = self.current_epoch * self.batches_per_epoch + batch_idx
        self.seen_weights.append(dict(self.loss_weights))
        raw = {key: torch.tensor(values[self.global_rank][step]) for key, values in self.losses.items()}
        tie = (self.weight - self.weight.detach()).sum()  # value 0, gradient flows to the parameter
        loss = sum(self.loss_weights[key] * value for key, value in raw.items()) + tie
        return {"loss": loss, **raw}

    def on_train_end(self):
        if self.results_dir is not None:
            results = {"seen": self.seen_weights, "final": self.loss_weights}
            Path(self.results_dir, f"rank{self.global_rank}.json").write_text(json.dumps(results))


def fit(module, callback, ckpt_path=None, **trainer_kwargs):
    kwargs = dict(max_epochs=EPOCHS, enable_progress_bar=False, logger=False, enable_checkpointing=False)
    trainer = Trainer(callbacks=[callback], enable_model_summary=False, **{**kwargs, **trainer_kwargs})
    trainer.fit(module, ckpt_path=ckpt_path)
    return trainer


def seen_cls(module):
    return [w["loss_cls"] for w in module.seen_weights]


# --- the pure rule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("w_cls", "stat_cls", "stat_reg", "expected"),
    [
        (1.0, 2.0, 1.0, (0.5, True)),
        (0.2, 4.0, 3.0, (0.75, True)),  # recomputed from the statistics: it can go up
        (0.3, 1.0, 2.0, (0.3, False)),
        (0.3, 1.0, 1.0, (0.3, False)),
        (1.0, 1.0, 0.0, (1e-3, True)),  # clamped to min_weight
        (0.5, math.nan, 1.0, (0.5, False)),
        (0.5, math.inf, 1.0, (0.5, False)),
        (0.5, 2.0, math.nan, (0.5, False)),
    ],
)
def test_alwa_update_hand_values(w_cls, stat_cls, stat_reg, expected):
    new_w, updated = alwa_update(w_cls, stat_cls, stat_reg, min_weight=1e-3)
    assert (new_w, updated) == (pytest.approx(expected[0]), expected[1])


def test_window_statistic_pools_pieces_like_the_whole():
    rng = random.Random(0)
    values = [rng.uniform(0.1, 3.0) for _ in range(37)]
    pieces = [values[:10], values[10:11], values[11:]]
    moments = sum(window_moments([torch.tensor(v) for v in piece], torch.device("cpu")) for piece in pieces)
    assert moments.dtype == torch.float64
    std = window_statistic(*moments.tolist(), statistic="std")
    both = window_statistic(*moments.tolist(), statistic="mean+std")
    ref_std = statistics.stdev(torch.tensor(values).tolist())  # float32-rounded like the recorded losses
    assert std == pytest.approx(ref_std, rel=1e-9)
    assert both == pytest.approx(statistics.mean(torch.tensor(values).tolist()) + ref_std, rel=1e-9)


def test_window_statistic_edge_cases():
    assert math.isnan(window_statistic(1, 2.0, 4.0, "std"))
    assert window_statistic(3, 3.0, 3.0, "std") == 0.0  # constant window
    assert window_moments([], torch.device("cpu")).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="got 'var'"):
        window_statistic(3, 3.0, 3.0, "var")


def test_reference_sequence_covers_both_cases():
    seen, stats, final = official_alwa([CLS], [REG], window=4)
    (c1, r1), (c2, r2), (c3, r3) = stats
    assert c1 > r1 and c2 < r2 and c3 > r3
    assert seen[4] < 1.0 and seen[8] == seen[4] and final > seen[8]


# --- inside a Trainer ------------------------------------------------------------------------------------------

VARIANTS = [(s, r) for s in ("std", "mean+std") for r in ("weighted", "raw")]


@pytest.fixture(scope="module")
def runs():
    """One 12-step run per (statistic, record) with interval 4: the seen weights and the trainer."""
    results = {}
    for statistic, record in VARIANTS:
        module = ToyDetector({"loss_cls": [CLS], "loss_reg": [REG]})
        trainer = fit(module, ALWA(interval=4, statistic=statistic, record=record))
        results[statistic, record] = module, trainer
    return results


@pytest.mark.parametrize(("statistic", "record"), VARIANTS)
def test_weights_follow_official_rule_after_every_window(runs, statistic, record):
    module, _ = runs[statistic, record]
    ref_seen, _, ref_final = official_alwa([CLS], [REG], window=4, statistic=statistic, record=record)
    assert seen_cls(module) == pytest.approx(ref_seen, rel=1e-6)
    assert module.loss_weights["loss_cls"] == pytest.approx(ref_final, rel=1e-6)
    assert all(w["loss_reg"] == 1.0 for w in module.seen_weights) and module.loss_weights["loss_reg"] == 1.0


def test_alwa1_and_alwa2_differ(runs):
    for record in ("weighted", "raw"):
        alwa1, alwa2 = seen_cls(runs["mean+std", record][0]), seen_cls(runs["std", record][0])
        assert alwa1[4] != pytest.approx(alwa2[4], rel=1e-3)


def test_raw_and_weighted_records_differ_as_expected(runs):
    weighted, raw = seen_cls(runs["std", "weighted"][0]), seen_cls(runs["std", "raw"][0])
    assert weighted[4] == pytest.approx(raw[4])  # first window: weights are 1, both records are equal
    assert weighted[8] == weighted[4]  # weighted cls std < reg std in window 2: kept
    assert raw[8] != pytest.approx(raw[4], rel=1e-3)  # raw cls std > reg std in window 2: changed


def test_logs_weight_and_window_statistics(runs):
    module, trainer = runs["std", "weighted"]
    _, ref_stats, _ = official_alwa([CLS], [REG], window=4)
    metrics = trainer.callback_metrics
    assert metrics["alwa/loss_cls_weight"].item() == pytest.approx(module.loss_weights["loss_cls"])
    assert metrics["alwa/loss_cls_stat"].item() == pytest.approx(ref_stats[-1][0], rel=1e-5)
    assert metrics["alwa/loss_reg_stat"].item() == pytest.approx(ref_stats[-1][1], rel=1e-5)


def test_log_false_logs_nothing():
    trainer = fit(ToyDetector({"loss_cls": [CLS], "loss_reg": [REG]}), ALWA(interval=4, log=False))
    assert not [key for key in trainer.callback_metrics if key.startswith("alwa/")]


def test_gradient_accumulation_counts_optimizer_steps():
    module = ToyDetector({"loss_cls": [CLS], "loss_reg": [REG]})
    fit(module, ALWA(interval=2), accumulate_grad_batches=2)
    per_optimizer_step, _, _ = official_alwa([CLS], [REG], window=4)  # 2 optimizer steps = 4 micro-batches
    per_batch, _, _ = official_alwa([CLS], [REG], window=2)
    assert seen_cls(module) == pytest.approx(per_optimizer_step, rel=1e-6)
    assert seen_cls(module) != pytest.approx(per_batch, rel=1e-3)


def test_two_groups_have_independent_weights():
    losses = {"loss_classifier": [CLS], "loss_box_reg": [REG], "loss_objectness": [CLS[::-1]], "loss_rpn": [REG]}
    module = ToyDetector(losses)
    fit(module, ALWA(interval=4, groups=[("loss_classifier", "loss_box_reg"), ("loss_objectness", "loss_rpn")]))
    roi, _, _ = official_alwa([CLS], [REG], window=4)
    rpn, _, _ = official_alwa([CLS[::-1]], [REG], window=4)
    assert [w["loss_classifier"] for w in module.seen_weights] == pytest.approx(roi, rel=1e-6)
    assert [w["loss_objectness"] for w in module.seen_weights] == pytest.approx(rpn, rel=1e-6)
    assert roi != pytest.approx(rpn, rel=1e-3)


def test_non_finite_window_is_skipped_with_warning():
    cls = [math.nan] + CLS[1:]
    module = ToyDetector({"loss_cls": [cls], "loss_reg": [REG]})
    with pytest.warns(RuntimeWarning, match="non-finite window statistics"):
        fit(module, ALWA(interval=4))
    after_skip, _, _ = official_alwa([CLS[4:]], [REG[4:]], window=4)  # window 1 dropped, w stays 1
    assert seen_cls(module) == pytest.approx([1.0] * 4 + after_skip, rel=1e-6)
    assert all(math.isfinite(w) and 1e-3 <= w <= 1.0 for w in seen_cls(module))


class SkipsSomeSteps(ToyDetector):
    """Returns ``None`` (Lightning skips the step) at the listed global batch indices, else the prescribed losses."""

    def __init__(self, losses, skipped):
        super().__init__(losses)
        self.skipped = skipped

    def training_step(self, batch, batch_idx):
        if self.current_epoch * self.batches_per_epoch + batch_idx in self.skipped:
            self.seen_weights.append(dict(self.loss_weights))
            return None
        return super().training_step(batch, batch_idx)


def test_skipped_steps_do_not_count_toward_the_interval():
    """Steps 1 and 6 are skipped: the windows are the recorded steps (0, 2, 3, 4) and (5, 7, 8, 9), each of
    `interval` values, as if the skipped steps had never happened."""
    skipped = {1, 6}
    module = SkipsSomeSteps({"loss_cls": [CLS], "loss_reg": [REG]}, skipped)
    trainer = fit(module, ALWA(interval=4))
    kept = [step for step in range(len(CLS)) if step not in skipped]
    expected, _, _ = official_alwa([[CLS[s] for s in kept]], [[REG[s] for s in kept]], window=4)
    assert trainer.global_step == len(CLS)  # Lightning still counted the skipped steps
    assert [seen_cls(module)[s] for s in kept] == pytest.approx(expected, rel=1e-6)
    assert len(set(expected)) == 3  # both windows changed the weight


def test_start_step_opens_the_first_window_late():
    """start_step=2: steps 0 and 1 are not recorded; the windows are steps 2-5 and 6-9 of the official rule."""
    module = ToyDetector({"loss_cls": [CLS], "loss_reg": [REG]})
    fit(module, ALWA(interval=4, start_step=2))
    expected, _, _ = official_alwa([CLS[2:]], [REG[2:]], window=4)
    assert seen_cls(module) == pytest.approx([1.0, 1.0] + expected, rel=1e-6)
    assert len(set(expected)) == 3  # both windows changed the weight


def test_resume_mid_window_matches_uninterrupted_run(tmp_path):
    losses = {"loss_cls": [CLS], "loss_reg": [REG]}
    make_alwa = lambda: ALWA(interval=4, record="raw")  # noqa: E731  raw: the restored window changes window 2
    full = ToyDetector(losses)
    fit(full, make_alwa())

    first = ToyDetector(losses)
    trainer = fit(first, make_alwa(), max_epochs=1)  # 6 steps: update at 4, window 2 holds steps 5 and 6
    ckpt = tmp_path / "mid_window.ckpt"
    trainer.save_checkpoint(ckpt)

    alwa = make_alwa()
    resumed = ToyDetector(losses)  # fresh weights 1.0; the callback restores them
    fit(resumed, alwa, ckpt_path=ckpt)
    assert seen_cls(resumed) == seen_cls(full)[BATCHES_PER_EPOCH:]
    assert resumed.loss_weights == full.loss_weights
    assert alwa.weights == {"loss_cls": full.loss_weights["loss_cls"]}

    state = torch.load(ckpt, weights_only=True)["callbacks"][alwa.state_key]
    assert (state["window_steps"], state["recorded_at"]) == (2, 6)
    assert state["histories"]["loss_cls"].tolist() == pytest.approx(CLS[4:6])
    assert state["weights"]["loss_cls"] == pytest.approx(seen_cls(full)[4])


def test_state_key():
    alwa = ALWA(interval=3, statistic="mean+std", record="raw", groups=[["a", "b"]])
    assert alwa.state_key == "ALWA{'groups': (('a', 'b'),)}"  # the settings travel in the state, not the key
    assert ALWA(interval=7, groups=[["a", "b"]]).state_key == alwa.state_key


def test_pickle_roundtrip_keeps_state():
    alwa = ALWA(interval=4)
    fit(ToyDetector({"loss_cls": [CLS], "loss_reg": [REG]}), alwa, max_steps=6)
    clone = pickle.loads(pickle.dumps(alwa))
    assert clone.state_key == alwa.state_key
    assert clone.weights == alwa.weights
    state, clone_state = alwa.state_dict(), clone.state_dict()
    assert clone_state["window_steps"] == state["window_steps"] == 2
    assert torch.equal(clone_state["histories"]["loss_cls"], state["histories"]["loss_cls"])


# --- errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": 1}, "`interval` must be an int >= 2.*got 1"),
        ({"interval": 2.5}, "`interval` must be an int >= 2.*got 2.5"),
        ({"statistic": "var"}, "`statistic` can be std, mean\\+std, got 'var'"),
        ({"record": "both"}, "`record` can be weighted, raw, got 'both'"),
        ({"min_weight": 0.0}, "`min_weight` must be in \\(0, 1\\], got 0.0"),
        ({"min_weight": 1.5}, "`min_weight` must be in \\(0, 1\\], got 1.5"),
        ({"start_step": -1}, "`start_step` must be an int >= 0, got -1"),
        ({"groups": []}, "`groups` must be a non-empty"),
        ({"groups": ["ab"]}, "pair of names, got 'ab'"),
        ({"groups": [("a", "b", "c")]}, "pair of names, got \\('a', 'b', 'c'\\)"),
        ({"groups": [("a", "b"), ("a", "c")]}, "repeated: \\['a'\\]"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(MisconfigurationException, match=match):
        ALWA(**kwargs)


def test_module_without_loss_weights_raises():
    module = ToyDetector({"loss_cls": [CLS], "loss_reg": [REG]})
    del module.loss_weights
    with pytest.raises(MisconfigurationException, match="needs `ToyDetector.loss_weights`"):
        fit(module, ALWA(interval=4))


def test_loss_weights_missing_key_raises():
    module = ToyDetector({"loss_cls": [CLS], "loss_box": [REG]})
    with pytest.raises(MisconfigurationException, match=r"lacks the ALWA key\(s\) \['loss_reg'\]"):
        fit(module, ALWA(interval=4))


class _NoRegOutput(ToyDetector):
    def training_step(self, batch, batch_idx):
        outputs = super().training_step(batch, batch_idx)
        del outputs["loss_reg"]
        return outputs


def test_outputs_missing_key_raises():
    module = _NoRegOutput({"loss_cls": [CLS], "loss_reg": [REG]})
    with pytest.raises(MisconfigurationException, match=r"\['loss_reg'\]; it returned the keys \['loss', 'loss_cls'\]"):
        fit(module, ALWA(interval=4))
