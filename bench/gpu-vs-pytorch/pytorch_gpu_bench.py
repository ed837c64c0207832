#!/usr/bin/env python3
"""PyTorch's side of bench/gpu-vs-pytorch, at its best on one GPU: bf16 autocast, channels_last,
cudnn.benchmark, and torch.compile where it helps. Prints one JSON record per (model, timed, mode).

Models (the same shapes as gpu_layers_bench.cc and the seed's CPU benchmarks):
  seed_cnn  examples/fashion-mnist-cnn.yaml's CNN, 1x28x28
  wide_cnn  3x3 convs 64-64/128-128/256-256 + pools + fc on 3x32x32 (gpu_layers_bench's WideCnn)
  resnet    the same stages with residual blocks (Tandem has no residual add yet: PyTorch only)
  lstm_lm   embedding 10000x256, LSTM 256, projection to 10000, 35 steps
  ctr       26 fields into a 1,451,594x64 EmbeddingBag(sum) + MLP 256-128-1
timed: "layers forward+backward" (what gpu_layers_bench times: no loss, no optimizer, a fixed
output gradient) or "train step" (forward, loss, backward, SGD momentum update).
"""
import argparse, json, time

import torch

nn = torch.nn
p = argparse.ArgumentParser()
p.add_argument("--models", default="seed_cnn,wide_cnn,resnet,lstm_lm,ctr")
p.add_argument("--steps", type=int, default=50)
p.add_argument("--warmup", type=int, default=10)
p.add_argument("--compile", default="seed_cnn,wide_cnn",
               help="models also timed under torch.compile")
a = p.parse_args()
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
dev = torch.device("cuda")
torch.manual_seed(1)
VOCAB, SEQ, HIDDEN = 10000, 35, 256
CTR_VOCAB, FIELDS, DIM = 1451594, 26, 64


def seed_cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Linear(1024, 10))


def wide_cnn():
    layers, c_in = [], 3
    for c in (64, 128, 256):
        for _ in range(2):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
            c_in = c
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 4 * 4, 10))


class Block(nn.Module):
    def __init__(self, c_in, c):
        super().__init__()
        self.a = nn.Conv2d(c_in, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c, 1) if c_in != c else nn.Identity()

    def forward(self, x):
        return torch.relu(self.b(torch.relu(self.a(x))) + self.skip(x))


def resnet():
    return nn.Sequential(Block(3, 64), nn.MaxPool2d(2), Block(64, 128), nn.MaxPool2d(2),
                         Block(128, 256), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4096, 10))


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.lstm = nn.LSTM(HIDDEN, HIDDEN, batch_first=True)
        self.proj = nn.Linear(HIDDEN, VOCAB)

    def forward(self, x):
        return self.proj(self.lstm(self.embed(x))[0])


class Ctr(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.EmbeddingBag(CTR_VOCAB, DIM, mode="sum")
        self.mlp = nn.Sequential(nn.Linear(FIELDS * DIM, 256), nn.ReLU(), nn.Linear(256, 128),
                                 nn.ReLU(), nn.Linear(128, 1))

    def forward(self, ids):  # ids [N, FIELDS], one id per field
        n = ids.shape[0]
        return self.mlp(self.emb(ids.reshape(-1, 1)).reshape(n, FIELDS * DIM))


MODELS = {  # name: (factory, batch, make input, make target, flops per example forward or None)
    "seed_cnn": (seed_cnn, 512, lambda b: torch.randn(b, 1, 28, 28, device=dev),
                 lambda b: torch.randint(0, 10, (b,), device=dev)),
    "wide_cnn": (wide_cnn, 256, lambda b: torch.randn(b, 3, 32, 32, device=dev),
                 lambda b: torch.randint(0, 10, (b,), device=dev)),
    "resnet": (resnet, 256, lambda b: torch.randn(b, 3, 32, 32, device=dev),
               lambda b: torch.randint(0, 10, (b,), device=dev)),
    "lstm_lm": (LM, 256, lambda b: torch.randint(0, VOCAB, (b, SEQ), device=dev),
                lambda b: torch.randint(0, VOCAB, (b * SEQ,), device=dev)),
    "ctr": (Ctr, 4096, lambda b: torch.randint(0, CTR_VOCAB, (b, FIELDS), device=dev),
            lambda b: torch.randint(0, 2, (b, 1), device=dev).float()),
}


def forward_flops(model, x):
    """Multiply-adds x 2 of the convolutions, linears and LSTM gates, counted with hooks."""
    total = [0.0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += 2.0 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total[0] += 2.0 * out.numel() * m.in_features
        elif isinstance(m, nn.LSTM):
            n, t = inp[0].shape[0], inp[0].shape[1]
            total[0] += 2.0 * n * t * 4 * m.hidden_size * (m.input_size + m.hidden_size)

    hs = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return total[0] / x.shape[0]


def run(name, timed, compiled):
    factory, batch, make_x, make_y = MODELS[name]
    model = factory().to(dev)
    x, y = make_x(batch), make_y(batch)
    conv = name in ("seed_cnn", "wide_cnn", "resnet")
    if conv:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    flops = forward_flops(model, x)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fwd = torch.compile(model) if compiled else model
    out_grad = None

    def step():
        nonlocal out_grad
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = fwd(x)
            if timed == "train step":
                if name == "ctr":
                    loss = nn.functional.binary_cross_entropy_with_logits(out.float(), y)
                else:
                    loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y)
        if timed == "train step":
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            if out_grad is None:
                out_grad = torch.full_like(out, 1e-3)
            out.backward(out_grad)

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    eps = batch * a.steps / secs
    rec = {"system": "pytorch", "model": name, "timed": timed,
           "mode": "bf16 autocast" + (", channels_last, cudnn.benchmark" if conv else "")
                   + (", torch.compile" if compiled else ""),
           "batch": batch, "steps": a.steps, "examples_per_s": round(eps, 1),
           "tflops": round(3 * flops * eps / 1e12, 2),
           "peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20),
           "torch": torch.__version__, "device": torch.cuda.get_device_name()}
    print(json.dumps(rec), flush=True)


for name in a.models.split(","):
    for timed in ("layers forward+backward", "train step"):
        for compiled in ([False, True] if name in a.compile.split(",") else [False]):
            try:
                run(name, timed, compiled)
            except Exception as e:  # one failing variant must not hide the others' figures
                print(json.dumps({"system": "pytorch", "model": name, "timed": timed,
                                  "compiled": compiled, "error": str(e)[:300]}), flush=True)
