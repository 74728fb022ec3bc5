"""Hostile checkpoints for ``load_module``: the cases of category ``checkpoints``."""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import inputs
from .harness import Case, Ctx
from .inputs import _Payload, edited_ckpt


# ---------------------------------------------------------------------------------------------- checkpoints
def _load(d: Path, ctx: Ctx) -> Any:
    from lightning_retina.checkpoint import load_module

    return load_module(ctx["ckpt"])


def ckpt_case(name: str, make: Callable[[Path], Path], expect="refuse", names=(), check=None, expected="") -> Case:
    def prepare(d: Path) -> Ctx:
        return {"ckpt": make(d)}

    return Case("checkpoints", name, expect, expected or f"refused naming {' and '.join(names) or 'the file'}",
                prepare, _load, names, check)  # fmt: skip


def ckpt_cases() -> list[Case]:
    def hp(**changes):
        return lambda d: edited_ckpt(d, **changes)

    def payload(d: Path) -> Path:
        import torch

        torch.save({"state_dict": _Payload(d / "PWNED"), "hyper_parameters": {}}, d / "p.ckpt")
        return d / "p.ckpt"

    def plain_pickle(d: Path) -> Path:
        (d / "p.ckpt").write_bytes(pickle.dumps(_Payload(d / "PWNED")))
        return d / "p.ckpt"

    def raw(data: bytes):
        def make(d: Path) -> Path:
            (d / "m.ckpt").write_bytes(data)
            return d / "m.ckpt"
        return make

    def truncated(d: Path) -> Path:
        data = inputs.CKPT.read_bytes()
        (d / "m.ckpt").write_bytes(data[: len(data) // 2])
        return d / "m.ckpt"

    def edit(fn):
        def make(d: Path) -> Path:
            import torch

            checkpoint = torch.load(inputs.CKPT, weights_only=True)
            fn(checkpoint)
            torch.save(checkpoint, d / "m.ckpt")
            return d / "m.ckpt"
        return make

    def no_pwned(r, c, w) -> str | None:
        return "payload ran" if (c["ckpt"].parent / "PWNED").exists() else None

    def loaded(r, c, w) -> str | None:
        return None if not r.training else "not in eval mode"

    name = ("edited.ckpt",)
    cases = [
        ckpt_case("valid", lambda d: shutil.copy(inputs.CKPT, d / "m.ckpt") and d / "m.ckpt", "work", check=loaded,
                  expected="loads in eval mode"),
        ckpt_case("num_classes 10**6", hp(num_classes=10**6), names=(*name, "num_classes")),
        ckpt_case("num_classes -1", hp(num_classes=-1), names=(*name, "num_classes")),
        ckpt_case("num_classes '3'", hp(num_classes="3"), names=(*name, "num_classes")),
        ckpt_case("num_classes True", hp(num_classes=True), names=(*name, "num_classes")),
        ckpt_case("fpn_channels 10**6", hp(fpn_channels=10**6), names=(*name, "fpn_channels")),
        ckpt_case("min_size 10**9", hp(min_size=10**9, max_size=10**9), names=(*name, "min_size")),
        ckpt_case("detections_per_img 10**9", hp(detections_per_img=10**9), names=(*name, "detections_per_img")),
        ckpt_case("topk_candidates 10**12", hp(topk_candidates=10**12), names=(*name, "topk_candidates")),
        ckpt_case("anchor_sizes of 10**5 entries", hp(anchor_sizes=tuple(range(8, 8 + 10**5))), "either",
                  names=(*name, "anchor"), check=loaded, expected="refused naming anchor_sizes (or loads bounded)"),
        ckpt_case("backbone_weights /etc/passwd", hp(backbone_weights="/etc/passwd"), "work", check=loaded,
                  expected="loads without reading /etc/passwd"),
        ckpt_case("backbone_weights DEFAULT", hp(backbone_weights="DEFAULT"), "work", check=loaded,
                  expected="loads without any download"),
        ckpt_case("backbone_weights IMAGENET1K_V1", hp(backbone_weights="IMAGENET1K_V1"), "work", check=loaded,
                  expected="loads without any download"),
        ckpt_case("backbone resnet9999", hp(backbone="resnet9999"), names=(*name, "resnet9999")),
        ckpt_case("backbone os.system", hp(backbone="os.system"), names=(*name, "os.system")),
        ckpt_case("class_names length mismatch", hp(class_names=["a"]), names=(*name, "class_names")),
        ckpt_case("_instantiator os.system", hp(_instantiator="os.system"), names=name),
        ckpt_case("pickle payload in state_dict", payload, names=("p.ckpt",), check=no_pwned),
        ckpt_case("plain pickle payload", plain_pickle, names=("p.ckpt",), check=no_pwned),
        ckpt_case("JSON file as ckpt", raw(b'{"state_dict": {}, "hyper_parameters": {}}'), names=("m.ckpt",)),
        ckpt_case("empty file", raw(b""), names=("m.ckpt",)),
        ckpt_case("random bytes", raw(os.urandom(5000)), names=("m.ckpt",)),
        ckpt_case("truncated checkpoint", truncated, names=("m.ckpt",)),
        ckpt_case("tensor dict, no hparams", edit(lambda c: c.pop("hyper_parameters")), names=("m.ckpt",)),
        ckpt_case("hyper_parameters a list", edit(lambda c: c.update(hyper_parameters=[1, 2])), names=("m.ckpt",)),
        ckpt_case("state_dict missing a key", edit(lambda c: c["state_dict"].pop(next(iter(c["state_dict"])))),
                  names=("m.ckpt",)),
        ckpt_case("state_dict wrong shape", edit(lambda c: c["state_dict"].update(
            {k: v[:1] for k, v in list(c["state_dict"].items())[:1]})), names=("m.ckpt",)),
        ckpt_case("state_dict NaN weights", edit(lambda c: [v.fill_(float("nan")) for v in c["state_dict"].values()
                                                            if v.is_floating_point()]), "either", names=("m.ckpt",),
                  check=loaded, expected="loads as stored (a diverged run's checkpoint), or refused naming it"),
        ckpt_case("missing file", lambda d: d / "absent.ckpt", names=("absent.ckpt",)),
        ckpt_case("a folder", lambda d: (d / "dir.ckpt").mkdir() or d / "dir.ckpt", names=("dir.ckpt",)),
    ]
    return cases
