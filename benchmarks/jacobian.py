"""Which exact per-task Jacobian is fastest on the playground's models? Prints ratios to a summed-loss backward.

The reference model of DESIGN section 3: a shared MLP 64-256-256, three 10-class heads, batch 256.
Run: python -m benchmarks.jacobian [--threads 2] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

from mtl_core.engine.jacobian import task_jacobian


def reference_model(tasks: int = 3) -> tuple[nn.Module, nn.ModuleList]:
    encoder = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
    heads = nn.ModuleList(nn.Linear(256, 10) for _ in range(tasks))
    return encoder, heads


def losses_of(encoder, heads, x, ys):
    features = encoder(x)
    return torch.stack([F.cross_entropy(head(features), y) for head, y in zip(heads, ys, strict=True)])


def batched_grads(losses, params):
    eye = torch.eye(len(losses))
    grads = torch.autograd.grad(losses, params, grad_outputs=eye, is_grads_batched=True, retain_graph=True)
    return torch.cat([g.reshape(len(losses), -1) for g in grads], dim=1)


def via_features(encoder, heads, x, ys):
    """Gradient w.r.t. the shared features first, then one batched pass through the encoder."""
    features = encoder(x)
    detached = features.detach().requires_grad_(True)
    losses = torch.stack([F.cross_entropy(h(detached), y) for h, y in zip(heads, ys, strict=True)])
    feature_grads = torch.stack([torch.autograd.grad(loss, detached, retain_graph=True)[0] for loss in losses])
    params = list(encoder.parameters())
    grads = torch.autograd.grad(features, params, grad_outputs=feature_grads, is_grads_batched=True)
    return torch.cat([g.reshape(len(losses), -1) for g in grads], dim=1)


def median_ms(fn, repeats: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder, heads = reference_model()
    x = torch.randn(256, 64)
    ys = [torch.randint(0, 10, (256,)) for _ in heads]
    shared = list(encoder.parameters())

    def summed():
        losses_of(encoder, heads, x, ys).sum().backward()

    def t_passes():
        task_jacobian(losses_of(encoder, heads, x, ys), shared)

    def batched():
        batched_grads(losses_of(encoder, heads, x, ys), shared)

    def features():
        via_features(encoder, heads, x, ys)

    reference = task_jacobian(losses_of(encoder, heads, x, ys), shared)
    for name, fn in [("is_grads_batched", lambda: batched_grads(losses_of(encoder, heads, x, ys), shared)),
                     ("features-then-batched", lambda: via_features(encoder, heads, x, ys))]:
        assert torch.allclose(fn(), reference, atol=1e-5), f"{name} disagrees with the T-pass Jacobian"

    base = median_ms(summed, args.repeats)
    print(f"threads={args.threads}  summed-loss forward+backward: {base:.2f} ms (= 1.00x)")
    for name, fn in [("T reverse passes (task_jacobian)", t_passes), ("autograd is_grads_batched", batched),
                     ("features, then batched encoder pass", features)]:
        ms = median_ms(fn, args.repeats)
        print(f"{name:38s} {ms:6.2f} ms  {ms / base:5.2f}x")


if __name__ == "__main__":
    main()
