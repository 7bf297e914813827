"""Training batches: random crops of the cached 0.3 m blocks, augmented as a whole batch on the training device.

What the model must survive off its aerial training areas is what satellite imagery does differently:
- geometry: scale (building sizes, GSD errors), any rotation, flips, and shear with a slight anisotropy, which
  is how an off-nadir view leans and squashes roofs;
- resolution: 0.5 m imagery upsampled to the engine's 0.3 m grid looks like the training blocks blurred, so a
  share of crops is taken down to 0.35-0.75 m and back up, others blurred;
- radiometry: panchromatic bands (gray, from a random mix of the colours), saturation, per-band gamma, clipped
  highlights, sensor noise.
Then the engine's normalisation: per band, the 2nd percentile -> 0 and the 98th -> 1, over a window 4x wider
than the crop half the time, because the engine stretches over the whole extent rather than per tile.

One affine map per crop (grid_sample) does every geometric step at once, so the batch is built with a few
kernels per crop: on a GPU, it keeps up with the network.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

CROP = 256
SCALE_RANGE = (0.75, 1.33)  # source pixels per output pixel
SHEAR_MAX = 0.2
ASPECT_RANGE = (0.87, 1.15)
COARSE_GSD_SHARE, COARSE_FACTOR = 0.35, (1.15, 2.5)  # resolution taken down by this factor, then back up
BLUR_SHARE, BLUR_SIGMA = 0.2, (0.4, 1.3)
NOISE_SHARE, NOISE_STD = 0.3, (2.0, 8.0)
GRAY_SHARE = 0.3
CONTEXT_SHARE, CONTEXT_SCALE = 0.5, 4.0


class BlockSampler:
    """Batches of (image (B, 3, CROP, CROP) in [0, 1], target (B, C + 3, CROP, CROP)) from cached blocks.

    A block: images (V, 3, H, W) uint8 (one per look), labels (C, H, W), valid (V, H, W), contact (H, W) and
    small (H, W) float in [0, 1]; the target holds the labels, then validity, contact zone, small-roof share
    (the layout `train.loss_fn` reads). Blocks are sampled in proportion to `weights`."""

    def __init__(self, blocks, weights, device, seed=0):
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.weights = np.asarray(weights, float) / np.sum(weights)
        self.images, self.targets = [], []
        for b in blocks:
            self.images.append(b["images"].to(self.device, torch.float32))
            per_block = torch.cat([b["labels"].float(), b["contact"][None].float(), b["small"][None].float()])
            self.targets.append((per_block.to(self.device), b["valid"].to(self.device, torch.float32)))

    def batch(self, size):
        images, targets, contexts = [], [], []
        for _ in range(size):
            image, target, context = self._crop()
            images.append(image)
            targets.append(target)
            contexts.append(context)
        images, contexts = torch.cat(images), torch.cat(contexts)
        images, contexts = self._radiometry(images, contexts)
        return stretch(images, contexts), torch.cat(targets)

    def _crop(self):
        rng = self.rng
        i = rng.choice(len(self.images), p=self.weights)
        block = self.images[i]
        per_block, valid = self.targets[i]
        v = int(rng.integers(block.shape[0]))
        h, w = block.shape[2:]
        scale = math.exp(rng.uniform(*np.log(SCALE_RANGE)))
        # any orientation and mirror image; shear and anisotropy for off-nadir looks
        angle = rng.uniform(-math.pi, math.pi)
        shear = rng.uniform(-SHEAR_MAX, SHEAR_MAX)
        aspect = math.exp(rng.uniform(*np.log(ASPECT_RANGE)))
        flip = -1.0 if rng.random() < 0.5 else 1.0
        c, s = math.cos(angle), math.sin(angle)
        linear = scale * np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]]) @ np.diag([aspect * flip,
                                                                                                  1 / aspect])
        # keep the crop centre far enough inside that most of the crop has data
        reach = 0.5 * CROP * scale
        cy = rng.uniform(min(reach, h / 2), max(h - reach, h / 2))
        cx = rng.uniform(min(reach, w / 2), max(w - reach, w / 2))
        image = _warp(block[v:v + 1], linear, (cx, cy), 2 * CROP, "reflection")  # 2x supersampled: no aliasing
        image = F.avg_pool2d(image, 2)
        # percentiles from 64 x 64 samples: over the crop, or over a window 4x wider
        wider = CONTEXT_SCALE if rng.random() < CONTEXT_SHARE else 1.0
        context = _warp(block[v:v + 1], linear * wider, (cx, cy), CROP // 4, "reflection")
        labels = _warp(per_block[None], linear, (cx, cy), CROP, "zeros")
        validity = _warp(valid[v:v + 1][None], linear, (cx, cy), CROP, "zeros")
        n = per_block.shape[0] - 2
        masks = (labels[:, :n] > 0.5).float()
        target = torch.cat([masks, (validity > 0.99).float(), (labels[:, n:n + 1] > 0.5).float(),
                            labels[:, n + 1:]], 1)
        return image, target, context

    def _radiometry(self, images, contexts):
        """Colour, resolution and noise changes on raw 0-255 values, the same colour change on the context."""
        rng, b = self.rng, images.shape[0]
        dev = images.device
        gray = torch.tensor(rng.random(b) < GRAY_SHARE, device=dev).view(b, 1, 1, 1)
        mix = torch.tensor(rng.dirichlet([4, 4, 4], b), dtype=torch.float32, device=dev).view(b, 3, 1, 1)
        saturation = torch.tensor(rng.uniform(0.5, 1.5, b), dtype=torch.float32, device=dev).view(b, 1, 1, 1)
        gamma = torch.tensor(rng.uniform(0.7, 1.4, (b, 3)), dtype=torch.float32, device=dev)
        gamma = torch.where(gray.view(b, 1), gamma[:, :1].expand(-1, 3), gamma).view(b, 3, 1, 1)
        exposure = np.where(rng.random(b) < 0.3, rng.uniform(1.0, 1.4, b), 1.0)
        exposure = torch.tensor(exposure, dtype=torch.float32, device=dev).view(b, 1, 1, 1)

        def colour(x):
            panchromatic = (x * mix).sum(1, keepdim=True).expand(-1, 3, -1, -1)
            mean = x.mean(1, keepdim=True)
            x = torch.where(gray, panchromatic, mean + (x - mean) * saturation)
            x = 255.0 * (x.clamp(0, 255) / 255.0) ** gamma
            return (x * exposure).clamp(0, 255)

        images, contexts = colour(images), colour(contexts)
        out = []
        for k in range(b):
            x = images[k:k + 1]
            if rng.random() < COARSE_GSD_SHARE:
                x = coarser(x, rng.uniform(*COARSE_FACTOR))
            elif rng.random() < BLUR_SHARE / (1 - COARSE_GSD_SHARE):
                x = gaussian_blur(x, rng.uniform(*BLUR_SIGMA))
            out.append(x)
        images = torch.cat(out)
        noisy = torch.tensor(rng.random(b) < NOISE_SHARE, device=dev).view(b, 1, 1, 1)
        std = torch.tensor(rng.uniform(*NOISE_STD, b), dtype=torch.float32, device=dev).view(b, 1, 1, 1)
        images = torch.where(noisy, (images + torch.randn_like(images) * std).clamp(0, 255), images)
        return images, contexts


def _warp(source, linear, centre, size, padding):
    """`size` x `size` samples of `source` (1, C, H, W) around `centre` (x, y, source pixels) through `linear`
    (source pixels per output pixel, 2 x 2, x first)."""
    h, w = source.shape[2:]
    step = CROP / size  # output pixels of the CROP grid per sample
    offsets = (torch.arange(size, device=source.device, dtype=torch.float32) + 0.5) * step - CROP / 2
    v, u = torch.meshgrid(offsets, offsets, indexing="ij")
    a = torch.tensor(linear, dtype=torch.float32, device=source.device)
    x = centre[0] + a[0, 0] * u + a[0, 1] * v
    y = centre[1] + a[1, 0] * u + a[1, 1] * v
    grid = torch.stack([2 * x / w - 1, 2 * y / h - 1], -1)[None]  # align_corners=False pixel-centre convention
    return F.grid_sample(source, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def coarser(x, factor):
    """`x` (1, C, H, W) seen at `factor` times the ground sample distance, resampled back onto its grid."""
    h, w = x.shape[2:]
    small = F.interpolate(x, size=(max(8, round(h / factor)), max(8, round(w / factor))), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 255)


def gaussian_blur(x, sigma):
    """Separable Gaussian blur of `x` (N, C, H, W), reflecting at the borders."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    k = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device) ** 2) / (2 * sigma**2))
    c = x.shape[1]
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k, groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.transpose(2, 3), groups=c)


def stretch(images, references):
    """The engine's normalisation, per crop and band: `references`' 2nd percentile -> 0, 98th -> 1, clipped."""
    b = images.shape[0]
    q = torch.quantile(references.reshape(b, 3, -1), torch.tensor([0.02, 0.98], device=images.device), dim=2)
    lo, hi = q[0].view(b, 3, 1, 1), q[1].view(b, 3, 1, 1)
    return ((images - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
