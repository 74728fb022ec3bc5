"""A backbone pretrained once per ablation, shared by every run: the RetinaNet paper's setting on this CPU.

The paper fine-tunes every detector from ImageNet weights; detectors trained from scratch here were still climbing
after 800 steps, so two seeds differed by more than any loss setting. No ImageNet weights can be downloaded, so the
ablation pretrains a ResNet once on an image-level task of the same images — multi-label classification, "which shapes
does this image hold" (binary cross-entropy per class) — that uses none of the detection losses it compares. Every run
then starts from these weights (frozen BatchNorm, the last three stages trained, as in the paper) with a new FPN and
head drawn from the run's seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.models import get_model
from tqdm.auto import tqdm

from lightning_retina.data import DetectionDataModule, collate_detection

_MEAN = (0.485, 0.456, 0.406)  # the normalisation the detector's transform applies
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PretrainSettings:
    """How the shared backbone is pretrained.

    Attributes:
        backbone: a torchvision ResNet name.
        steps: optimizer steps (AdamW, linear warm-up of 50 steps, cosine to 0).
        lr: peak learning rate.
        seed: seed of the initial weights and the data order (the same for every run of the ablation).
    """

    backbone: str = "resnet18"
    steps: int = 600
    lr: float = 2e-3
    seed: int = 1234


def images_and_labels(
    images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch for the classifier: normalised images ``[B, 3, H, W]`` (channels-last) and multi-hot labels
    ``[B, num_classes]`` (1 where the image holds at least one box of the class)."""
    mean, std = torch.tensor(_MEAN).view(1, 3, 1, 1), torch.tensor(_STD).view(1, 3, 1, 1)
    batch = (torch.stack(list(images)) - mean) / std
    labels = torch.zeros(len(targets), num_classes)
    for row, target in enumerate(targets):
        labels[row, target["labels"]] = 1.0
    return batch.contiguous(memory_format=torch.channels_last), labels


def exact_match(net: torch.nn.Module, loader: DataLoader, num_classes: int) -> float:
    """Fraction of images whose predicted class set (logit > 0) equals the true one."""
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for images, targets in loader:
            batch, labels = images_and_labels(images, targets, num_classes)
            correct += int(((net(batch) > 0).float() == labels).all(dim=1).sum())
            total += len(labels)
    net.train()
    return correct / max(total, 1)


def pretrain_backbone(
    datamodule: DetectionDataModule, settings: PretrainSettings, path: Path, precision: str
) -> dict[str, float]:
    """Pretrain a ResNet on the training split's image-level labels and save its ``state_dict`` at ``path``.

    Reuses ``path`` when its record (``path`` + ``.json``) holds the same settings; the record also keeps the
    classifier's exact-match accuracy on the val split.

    Args:
        datamodule: the ablation's data, set up for ``"fit"``.
        settings: backbone, steps, lr and seed.
        path: where the ``state_dict`` goes (a file the detector's ``backbone_weights`` can read).
        precision: ``"bf16-mixed"`` to train under bf16 autocast, anything else float32.

    Returns:
        ``{"val_exact_match": ...}``.
    """
    record_path = path.with_name(path.name + ".json")
    wanted = asdict(settings)
    if path.is_file() and record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("settings") == wanted:
            return record["result"]
    num_classes = len(datamodule.class_names)
    torch.manual_seed(settings.seed)
    net = get_model(settings.backbone, weights=None, num_classes=num_classes).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    warmup = 50

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, settings.steps) / settings.steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(settings.seed)
    dataset = datamodule.datasets["train"]
    if len(dataset) == 0:
        raise ValueError("the training split has no images to pretrain on")
    loader = DataLoader(dataset, batch_size=min(32, len(dataset)), shuffle=True, generator=generator,
                        collate_fn=collate_detection, drop_last=True)  # fmt: skip
    bar = tqdm(total=settings.steps, desc="pretraining the backbone", unit="step")
    step = 0
    while step < settings.steps:
        for images, targets in loader:
            batch, labels = images_and_labels(images, targets, num_classes)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
                logits = net(batch)
            loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if step == settings.steps:
                break
    bar.close()
    result = {"val_exact_match": exact_match(net, datamodule.val_dataloader(), num_classes)}
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    record_path.write_text(json.dumps({"settings": wanted, "result": result}, indent=1))
    return result
