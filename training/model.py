"""A small U-Net for building segmentation: RGB in, sigmoid probabilities (building, interior) out."""
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

WIDTHS = (16, 32, 64, 128, 256)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Up(nn.Module):
    """Bilinear upsampling, a 1x1 squeeze to the skip's width, concatenation, one 3x3 conv."""

    def __init__(self, cin: int, cskip: int):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, cskip, 1, bias=False), nn.BatchNorm2d(cskip), nn.ReLU(inplace=True))
        self.fuse = conv_bn_relu(2 * cskip, cskip)

    def forward(self, x, skip):
        # Squeezing before upsampling keeps the full-resolution convolutions cheap.
        x = F.interpolate(self.squeeze(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))


class SmallUNet(nn.Module):
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

    def logits(self, x):
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)

    def forward(self, x):
        return torch.sigmoid(self.logits(x))


class ExportWrapper(nn.Module):
    """What goes into the ONNX file: sigmoid inside, so the output already holds probabilities."""

    def __init__(self, net: SmallUNet):
        super().__init__()
        self.net = net

    def forward(self, image):
        return torch.sigmoid(self.net.logits(image))
