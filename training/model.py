"""The segmentation networks: RGB in [0, 1] in, per-channel logits out (buildings: building, interior; roads: road).

`SmallUNet` is trained from scratch; `LiteUNet` decodes an ImageNet-pretrained EfficientNet-Lite0 encoder.
"""
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

WIDTHS = (16, 32, 64, 128, 256)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Up(nn.Module):
    """A 1x1 squeeze to `cout` (the skip's width unless given), bilinear upsampling, concatenation, one 3x3 conv."""

    def __init__(self, cin: int, cskip: int, cout: int | None = None):
        super().__init__()
        cout = cout or cskip
        self.squeeze = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        self.fuse = conv_bn_relu(cout + cskip, cout)

    def forward(self, x, skip):
        # Squeezing before upsampling keeps the full-resolution convolutions cheap.
        x = F.interpolate(self.squeeze(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))


class Segmenter(nn.Module):
    """What the networks share: their feature maps (`features`, shallowest first) decoded deepest first by
    `self.up`, then a 1x1 head; `forward` gives probabilities."""

    def logits(self, x):
        skips = self.features(x)
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)

    def forward(self, x):
        return torch.sigmoid(self.logits(x))


class SmallUNet(Segmenter):
    """Encoder of double 3x3 conv blocks at strides 1..16, light decoder; input H, W multiples of 16."""

    def __init__(self, widths=WIDTHS, out_channels: int = 2):
        super().__init__()
        blocks, cin = [], 3
        for w in widths:
            blocks.append(nn.Sequential(conv_bn_relu(cin, w), conv_bn_relu(w, w)))
            cin = w
        self.down = nn.ModuleList(blocks)
        self.up = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def features(self, x):
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        return skips


class LiteUNet(Segmenter):
    """EfficientNet-Lite0 encoder (strides 2..32), a light U-Net decoder back to full resolution; H, W multiples
    of 32. A full-resolution 3x3 stem feeds the last step, so outlines stay sharp at 0.3 m."""

    DECODER = (96, 64, 48, 32, 16)  # widths at strides 16, 8, 4, 2, 1

    def __init__(self, out_channels: int = 2, pretrained: bool = False):
        super().__init__()
        from training.encoder import TAP_CHANNELS, EfficientNetLite0Encoder, load_imagenet_weights
        self.encoder = EfficientNetLite0Encoder()
        if pretrained:
            load_imagenet_weights(self.encoder)
        self.stem = conv_bn_relu(3, 16)
        skips = (16, *TAP_CHANNELS[:-1])  # full resolution, then strides 2, 4, 8, 16
        widths, cin = [], TAP_CHANNELS[-1]
        for skip, width in zip(reversed(skips), self.DECODER):
            widths.append(Up(cin, skip, width))
            cin = width
        self.up = nn.ModuleList(widths)
        self.head = nn.Conv2d(self.DECODER[-1], out_channels, 1)

    def features(self, x):
        return [self.stem(x), *self.encoder(x)]


ARCHITECTURES = ("unet_small", "effnet_lite0")


def build(arch: str, out_channels: int, pretrained: bool = False) -> nn.Module:
    """A network by name; `pretrained` loads the ImageNet encoder weights (LiteUNet only)."""
    if arch == "effnet_lite0":
        return LiteUNet(out_channels, pretrained=pretrained)
    return SmallUNet(out_channels=out_channels)


class ExportWrapper(nn.Module):
    """What goes into the ONNX file: sigmoid inside, so the output already holds probabilities."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image):
        return torch.sigmoid(self.net.logits(image))
