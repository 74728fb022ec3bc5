"""ALWA under 2-process CPU DDP (gloo): ranks fed different losses end with the weights of the pooled windows."""

import json

import pytest

from lightning_retina.callbacks import ALWA
from tests.test_alwa import CLS, REG, ToyDetector, fit, official_alwa

# rank 1 fluctuates differently, so pooling changes the statistics
CLS_RANK1 = [c * 1.5 + (0.1 if i % 2 else -0.1) for i, c in enumerate(CLS)]
REG_RANK1 = [r * 0.8 for r in REG]


def test_ddp_ranks_hold_identical_pooled_weights(tmp_path):
    losses = {"loss_cls": [CLS, CLS_RANK1], "loss_reg": [REG, REG_RANK1]}
    fit(
        ToyDetector(losses, results_dir=str(tmp_path)),
        ALWA(interval=4),
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        use_distributed_sampler=False,  # both ranks see every step index; the rank picks its sequence
    )
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    pooled_seen, _, pooled_final = official_alwa(losses["loss_cls"], losses["loss_reg"], window=4)
    _, _, rank0_alone = official_alwa([CLS], [REG], window=4)
    assert pooled_final != pytest.approx(rank0_alone, rel=1e-3)  # pooling matters for this data
    for result in ranks:
        assert [w["loss_cls"] for w in result["seen"]] == pytest.approx(pooled_seen, rel=1e-6)
        assert result["final"]["loss_cls"] == pytest.approx(pooled_final, rel=1e-6)
    assert ranks[0]["final"] == ranks[1]["final"]
