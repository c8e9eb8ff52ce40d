#!/usr/bin/python3
"""Exports the reference model zoo with PyTorch reference inputs and outputs.

Usage: /usr/bin/python3 scripts/zoo.py OUT_DIR [NAME ...]

For each model NAME writes OUT_DIR/NAME.onnx and reference pairs at batch 1
(NAME.in.npy, NAME.out.npy) and batch 4 (NAME.b4.in.npy, NAME.b4.out.npy).
Weights are random with fixed seeds (no downloads). BatchNorm statistics are
calibrated on random batches so that outputs depend on inputs (see
calibrate_batchnorm); the zoo test also checks that they do.
"""
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torchvision.models as tvm

warnings.filterwarnings("ignore")
torch.set_num_threads(max(1, os.cpu_count() or 1))


def calibrate_batchnorm(model, make_input, gen):
    """Gives BatchNorm layers realistic statistics and random affine parameters.

    With freshly initialized running statistics, deep eval-mode networks (MobileNet,
    EfficientNet) collapse to a near-constant output, which would make the reference
    comparison meaningless. Running a few random batches in training mode with a
    cumulative average sets statistics that keep activations normalized.
    """
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if not bns:
        return
    for m in bns:
        n = m.num_features
        m.weight.data.copy_(1.0 + 0.2 * torch.randn(n, generator=gen))
        m.bias.data.copy_(0.1 * torch.randn(n, generator=gen))
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(make_input(8, gen))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        return self.net(x)


class BertStyleEncoder(nn.Module):
    """Token ids -> embeddings + learned positions -> 4 transformer encoder layers."""

    def __init__(self, vocab=1000, hidden=256, heads=4, layers=4, ff=1024, max_len=512):
        super().__init__()
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(max_len, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, ff, dropout=0.0, activation="gelu", batch_first=True)
        # nn.TransformerEncoder deep-copies the layer; give each copy its own weights below.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        gen = torch.Generator().manual_seed(1234)
        for p in self.parameters():
            with torch.no_grad():
                if p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / p.shape[-1]) ** 0.5)
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):  # keep LayerNorm non-degenerate
                with torch.no_grad():
                    m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=gen))

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.tok(ids) + self.pos(positions)
        return self.norm(self.encoder(x))


def image_input(batch, gen):
    return torch.randn(batch, 3, 224, 224, generator=gen)


MODELS = {
    # name: (constructor, input maker, opset, input name, dynamic axes of input)
    "mlp": (Mlp, lambda b, g: torch.randn(b, 64, generator=g), 13),
    "resnet18": (lambda: tvm.resnet18(weights=None), image_input, 13),
    "resnet50": (lambda: tvm.resnet50(weights=None), image_input, 13),
    "mobilenet_v2": (lambda: tvm.mobilenet_v2(weights=None), image_input, 13),
    "mobilenet_v3_small": (lambda: tvm.mobilenet_v3_small(weights=None), image_input, 14),
    "squeezenet1_1": (lambda: tvm.squeezenet1_1(weights=None), image_input, 13),
    "efficientnet_b0": (lambda: tvm.efficientnet_b0(weights=None), image_input, 13),
    "bert_encoder": (BertStyleEncoder, lambda b, g: torch.randint(0, 1000, (b, 128), generator=g), 17),
}


def export(name, out_dir):
    ctor, make_input, opset = MODELS[name]
    torch.manual_seed(0)
    model = ctor()
    gen = torch.Generator().manual_seed(7)
    calibrate_batchnorm(model, make_input, gen)
    model.eval()
    x1 = make_input(1, gen)
    x4 = make_input(4, gen)
    dynamic = {"input": {0: "batch"}, "output": {0: "batch"}}
    if name == "bert_encoder":
        dynamic = {"input": {0: "batch", 1: "sequence"}, "output": {0: "batch", 1: "sequence"}}
    path = os.path.join(out_dir, name + ".onnx")
    # Export with autograd on: under no_grad, PyTorch 1.13 routes TransformerEncoderLayer
    # through a fused fast path that has no ONNX export.
    torch.onnx.export(model, (x1,), path, input_names=["input"], output_names=["output"],
                      dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True)
    with torch.no_grad():
        for suffix, x in (("", x1), (".b4", x4)):
            y = model(x)
            np.save(os.path.join(out_dir, name + suffix + ".in.npy"), x.numpy())
            np.save(os.path.join(out_dir, name + suffix + ".out.npy"), y.numpy())
    print(f"zoo: {name} -> {path} (opset {opset})")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    names = sys.argv[2:] or list(MODELS)
    for name in names:
        if name not in MODELS:
            sys.exit(f"unknown zoo model '{name}'; known: {', '.join(MODELS)}")
        export(name, out_dir)


if __name__ == "__main__":
    main()
