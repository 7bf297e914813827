"""Fine-tune an ONNX building model on training chips: the adaptation's training process.

Run by the plugin as a subprocess of a Python that has PyTorch and onnx (QGIS's own, or the environment named in
the plugin's settings, e.g. the one `make train-setup` builds); it imports nothing of the plugin, so it runs in
any such environment:

    python finetune.py train JOB.json     fine-tune; writes the job's output (and its fp16 variant)
    python finetune.py card MODEL.onnx CARD.json [MODEL.fp16.onnx ...]   store a model card in the files
    python finetune.py check              print what this Python offers (versions, device) as JSON

Each step prints one JSON line on stdout (``{"event": "step", "step": 12, "fraction": 0.2, "loss": 0.41}``), which
the plugin turns into progress; the last line says ``"event": "done"``. Files are written under a temporary name
and renamed when complete: a process killed mid-run (cancel) leaves no model behind.

JOB.json: base_model (an .onnx file), chips (an .npz from core.adapt.chips: images uint8 [N, 3, S, S], labels uint8
[N, C, S, S], known uint8 [N, S, S]), output (the adapted NAME.onnx; NAME.fp16.onnx beside it when ``fp16``, unless
float16 moves the probabilities by more than FP16_TOLERANCE), card (the adapted model's card), minutes, max_steps,
device (auto, cpu or gpu), threads, batch, crop, learning_rate, seed, mean, std (the card's normalisation after the
stretch); tuning_chips (optional, an .npz as chips): the area's tuning chips, on which the loss is measured before
training and every ``check_every`` steps; the weights with the lowest tuning loss are written (the base's own when
no step improved on them: a few chips overfit quickly, and a fine-tune must not leave the model worse on ground it
did not train on).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its sibling modules, whatever the cwd


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "check":
        return check()
    if command == "train" and len(rest) == 1:
        with open(rest[0]) as f:
            return train(json.load(f))
    if command == "card" and len(rest) >= 2:
        with open(rest[1]) as f:
            card = json.load(f)
        return write_card(card, [rest[0], *rest[2:]])
    print(f"unknown command {' '.join(argv)}\n{__doc__}", file=sys.stderr)
    return 2


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def check() -> int:
    """What this Python can do for adaptation, as one JSON line (the plugin's check before it offers a run)."""
    import onnx
    import torch

    emit(event="check", torch=torch.__version__, onnx=onnx.__version__, cuda=torch.cuda.is_available(),
         gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "", python=sys.version.split()[0])
    return 0


def train(job: dict) -> int:
    import numpy as np
    import onnx
    import torch
    from onnx_precision import card_of, save_atomic, to_fp16, with_card
    from onnx_torch import OnnxModule

    started = time.time()
    torch.manual_seed(job.get("seed", 0))
    rng = np.random.default_rng(job.get("seed", 0))
    threads = int(job.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    device = _device(job.get("device", "auto"))
    base = onnx.load(job["base_model"])
    net = OnnxModule(base).to(device)
    if not net.ends_in_sigmoid:
        raise SystemExit("The model's output is not a sigmoid: adaptation trains probability models only.")
    chips = np.load(job["chips"])
    images = torch.from_numpy(chips["images"]).to(device)  # N, 3, S, S uint8: the stretched input x 255
    labels = torch.from_numpy(chips["labels"]).to(device)  # N, C, S, S
    known = torch.from_numpy(chips["known"]).to(device)  # N, S, S: where the labels are complete
    mean = torch.tensor(job.get("mean", [0.0] * images.shape[1]), device=device).view(1, -1, 1, 1)
    std = torch.tensor(job.get("std", [1.0] * images.shape[1]), device=device).view(1, -1, 1, 1)
    batch, crop = int(job.get("batch", 8)), min(int(job.get("crop", 192)), images.shape[-1])
    minutes, max_steps = float(job["minutes"]), job.get("max_steps")
    optimiser = torch.optim.AdamW(net.parameters(), lr=job.get("learning_rate", 3e-4), weight_decay=1e-4)
    # L2-SP: a pull towards the base weights, so a few hundred roofs refine the model rather than replace it
    anchor = float(job.get("anchor", 0.0))
    base_weights = [p.detach().clone() for p in net.parameters()] if anchor > 0 else []
    tuning = _tuning_set(job.get("tuning_chips"), device, mean, std)
    check_every = int(job.get("check_every", 25))
    chip_weights = known.float().mean((1, 2)).cpu().numpy()  # chips with more labelled area are drawn more often
    chip_weights = chip_weights / chip_weights.sum()
    deadline = started + 60 * minutes
    emit(event="start", device=_device_label(device), chips=int(images.shape[0]), crop=crop, batch=batch,
         parameters=int(sum(p.numel() for p in net.parameters())))
    step, losses = 0, []
    best = _Best(tuning_loss(net, tuning), 0, net) if tuning else None
    if best:
        emit(event="tuning", step=0, loss=round(best.loss, 4))
    net.train()
    while time.time() < deadline and (max_steps is None or step < max_steps):
        fraction = min(1.0, max((time.time() - started) / (deadline - started),
                                step / max_steps if max_steps else 0.0))
        for group in optimiser.param_groups:  # a short warm-up, then cosine decay over the time budget
            group["lr"] = job.get("learning_rate", 3e-4) * min(1.0, (step + 1) / 10) * (
                0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * fraction)))
        x, y, mask = _batch(images, labels, known, chip_weights, batch, crop, rng)
        x = ((x - mean) / std).contiguous()
        loss = _loss(net(x), y, mask)
        if anchor > 0:
            loss = loss + anchor * sum(((p - p0) ** 2).sum() for p, p0 in zip(net.parameters(), base_weights))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        losses.append(float(loss))
        emit(event="step", step=step, fraction=round(fraction, 4), loss=round(losses[-1], 4))
        if best and step % check_every == 0:
            best.offer(tuning_loss(net, tuning), step, net)
    if best:
        if step % check_every:
            best.offer(tuning_loss(net, tuning), step, net)
        best.restore(net)
    net = net.cpu().eval()
    card = dict(job["card"])
    card.setdefault("adaptation", {}).update(
        steps=step, minutes=round((time.time() - started) / 60, 2), device=_device_label(device),
        batch=batch, crop_px=crop, final_loss=round(float(np.mean(losses[-20:])), 4) if losses else None,
        **(best.as_card() if best else {}))
    adapted = with_card(net.write_back(base), card)
    onnx.checker.check_model(adapted)
    output = job["output"]
    save_atomic(adapted, output)
    fp16 = {}
    if job.get("fp16"):
        # the file as written (float16-stored weights rounded) against its variant, on the training device
        written = OnnxModule(adapted).to(device)
        half_check = _half_difference(written, _sample_inputs(images, tuning, mean, std, device))
        fp16 = dict(fp16_written=half_check <= FP16_TOLERANCE,
                    fp16_difference=round(half_check, 5) if math.isfinite(half_check) else None)
        if fp16["fp16_written"]:
            save_atomic(with_card(to_fp16(adapted), card_of(adapted)), output[: -len(".onnx")] + ".fp16.onnx")
    emit(event="done", steps=step, minutes=card["adaptation"]["minutes"], device=card["adaptation"]["device"],
         output=output, **(best.as_card() if best else {}), **fp16)
    return 0


# The largest probability difference the half-precision variant may show against the model: it catches overflow
# (inf) and gross loss of precision. On a GPU the shipped fp16 variant differs by under 0.001; PyTorch's float16
# on a CPU, which rounds more, by up to 0.02 on a 512 px Atlanta tile.
FP16_TOLERANCE = 0.05


def _sample_inputs(images, tuning, mean, std, device):
    """A few normalised chips to compare precisions on: the tuning chips where there are, else training chips.
    One on a CPU, where PyTorch's float16 convolutions are slow; four on a GPU."""
    count = 4 if device.type == "cuda" else 1
    if tuning:
        return tuning[0][:count]
    return (images[:count].float() / 255 - mean) / std


def _half_difference(net, inputs) -> float:
    """The largest difference between ``net``'s probabilities in float32 and in float16 on ``inputs`` (on the
    device it trained on: a GPU, where the fp16 variant runs, when it trained on one); inf where float16
    overflows. The interpreter's Cast nodes follow the run's precision, as the fp16 variant's do."""
    import copy

    import torch

    net.eval()
    half = copy.deepcopy(net).half()
    with torch.no_grad():
        full_probabilities = torch.sigmoid(net(inputs))
        half_probabilities = torch.sigmoid(half(inputs.half()).float())
    if not bool(torch.isfinite(half_probabilities).all()):
        return math.inf
    return float((full_probabilities - half_probabilities).abs().max())


class _Best:
    """The weights with the lowest tuning loss so far, and when they were reached (step 0: the base's)."""

    def __init__(self, loss: float, step: int, net):
        self.base_loss = loss
        self.loss, self.step, self.state = loss, step, _copy(net)

    def offer(self, loss: float, step: int, net) -> None:
        emit(event="tuning", step=step, loss=round(loss, 4))
        if loss < self.loss:
            self.loss, self.step, self.state = loss, step, _copy(net)

    def restore(self, net) -> None:
        net.load_state_dict(self.state)

    def as_card(self) -> dict:
        return dict(kept_step=self.step, tuning_loss_base=round(self.base_loss, 4),
                    tuning_loss_kept=round(self.loss, 4))


def _copy(net) -> dict:
    return {name: value.detach().clone() for name, value in net.state_dict().items()}


def _tuning_set(path, device, mean, std):
    """The tuning chips as normalised inputs, labels and masks on ``device``; None without them."""
    if not path:
        return None
    import numpy as np
    import torch

    chips = np.load(path)
    if not len(chips["images"]):
        return None
    images = (torch.from_numpy(chips["images"]).to(device).float() / 255 - mean) / std
    return images, torch.from_numpy(chips["labels"]).to(device).float(), \
        torch.from_numpy(chips["known"]).to(device).float()[:, None]


def tuning_loss(net, tuning, batch: int = 4) -> float:
    """The training loss over the whole tuning chips, without augmentation (a few forward passes)."""
    import torch

    images, labels, known = tuning
    was_training = net.training
    net.eval()
    total = 0.0
    with torch.no_grad():
        for first in range(0, len(images), batch):
            part = slice(first, first + batch)
            total += float(_loss(net(images[part]), labels[part], known[part])) * len(images[part])
    net.train(was_training)
    return total / len(images)


def write_card(card: dict, paths: list[str]) -> int:
    import onnx
    from onnx_precision import save_atomic, with_card

    for path in paths:
        save_atomic(with_card(onnx.load(path), card), path)
    emit(event="done", files=paths)
    return 0


def _device(wanted: str):
    import torch

    if wanted == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if wanted == "gpu":
        raise SystemExit("No GPU is visible to PyTorch in this environment: choose the CPU, or a PyTorch with CUDA.")
    return torch.device("cpu")


def _device_label(device) -> str:
    import torch

    if device.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(device)})"
    return f"CPU, {torch.get_num_threads()} thread(s)"


def _batch(images, labels, known, weights, size, crop, rng):
    """Random crops, each turned by a multiple of 90 degrees and maybe mirrored, with a small gain and offset:
    what a mapper's few chips can afford without distorting the roofs the model must learn."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    chosen = rng.choice(len(images), size=size, p=weights)
    side = images.shape[-1]
    xs, ys, ms = [], [], []
    for index in chosen:
        row, col = (int(v) for v in rng.integers(0, side - crop + 1, size=2))
        window = (slice(None), slice(row, row + crop), slice(col, col + crop))
        x = images[index][window].float() / 255
        y = labels[index][window].float()
        m = known[index][window[1:]].float()[None]
        scale = rng.uniform(0.8, 1.25)  # roofs a little larger or smaller: another city's sizes, another GSD
        if abs(scale - 1) > 0.05:
            size = max(32, int(round(crop * scale / 32)) * 32)
            x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]
            y = F.interpolate(y[None], size=(size, size), mode="nearest")[0]
            m = F.interpolate(m[None], size=(size, size), mode="nearest")[0]
            x, y, m = (_fit(t, crop) for t in (x, y, m))
        turns = int(rng.integers(4))
        x, y, m = (torch.rot90(t, turns, (1, 2)) for t in (x, y, m))
        if rng.random() < 0.5:
            x, y, m = (torch.flip(t, (2,)) for t in (x, y, m))
        gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.06, 0.06)
        xs.append((x * gain + offset).clamp(0, 1))
        ys.append(y)
        ms.append(m)
    return torch.stack(xs), torch.stack(ys), torch.stack(ms)


def _fit(tensor, size):
    """``tensor`` [C, H, W] cropped or zero-padded (centred) to size x size: padding is unknown, never taught."""
    import torch.nn.functional as F  # noqa: N812

    h = tensor.shape[-1]
    if h >= size:
        start = (h - size) // 2
        return tensor[:, start:start + size, start:start + size]
    before = (size - h) // 2
    return F.pad(tensor, (before, size - h - before, before, size - h - before))


def _loss(logits, target, mask):
    """Binary cross-entropy plus soft Dice per output channel, counted only where the labels are complete."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    mask = mask.expand_as(target)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=mask, reduction="none").sum((0, 2, 3))
    bce = bce / mask.sum((0, 2, 3)).clamp_min(1)
    p = torch.sigmoid(logits) * mask
    dice = 1 - (2 * (p * target).sum((0, 2, 3)) + 1) / (p.sum((0, 2, 3)) + (target * mask).sum((0, 2, 3)) + 1)
    return (bce + dice).sum()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
