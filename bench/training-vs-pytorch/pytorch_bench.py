#!/usr/bin/python3
"""PyTorch's side of bench/training-vs-pytorch: the same models, data, batch and optimizer as
training_bench.cc, printing the same JSON line. Run by run_bench.py with the thread settings,
under PyTorch 2.x (the pinned venv) or Debian's 1.13.

Settings (run_bench.py tries each and keeps the best): --channels-last (CNN: activations and
weights in NHWC, oneDNN's preferred layout for its convolutions), --compile (torch.compile of
the model with the default inductor backend: C++/OpenMP kernels generated and built with the
system compiler; the first steps, which compile, are warm-up and not timed). PyTorch's CPU
convolutions use oneDNN (mkldnn) in every setting (torch.backends.mkldnn is on by default)."""
import argparse, gzip, json, resource, time

import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--model", choices=["cnn", "mlp", "lstm"], default="mlp")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--steps", type=int, default=100)
p.add_argument("--warmup", type=int, default=10)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--channels-last", action="store_true")
p.add_argument("--compile", action="store_true")
a = p.parse_args()
# Peak RSS once torch is imported, before any model: what the library itself costs (PyPI's 2.x
# maps its CUDA libraries even on a CPU). Reported beside the run's peak.
import_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
torch.set_num_threads(a.threads)
torch.manual_seed(1)
VOCAB, SEQ, HIDDEN = 10000, 35, 256
nn = torch.nn

if a.model == "cnn":
    model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Linear(1024, 10))
elif a.model == "mlp":
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                          nn.ReLU(), nn.Linear(256, 10))
else:
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, HIDDEN)
            self.lstm = nn.LSTM(HIDDEN, HIDDEN, batch_first=True)
            self.proj = nn.Linear(HIDDEN, VOCAB)
        def forward(self, x):
            return self.proj(self.lstm(self.embed(x))[0])
    model = LM()
memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
if a.channels_last:
    model = model.to(memory_format=memory_format)
run = torch.compile(model) if a.compile else model
opt = torch.optim.SGD(model.parameters(), lr=0.1 if a.model == "lstm" else 0.01, momentum=0.9,
                      weight_decay=0.0005 if a.model == "cnn" else 0.0)

if a.model != "lstm":
    d = "/usr/share/datasets/fashion-mnist/"
    images = torch.from_numpy(np.frombuffer(gzip.open(d + "train-images-idx3-ubyte.gz").read(),
                                            np.uint8, offset=16).reshape(-1, 1, 28, 28)
                              .astype(np.float32) / 255)
    labels = torch.from_numpy(np.frombuffer(gzip.open(d + "train-labels-idx1-ubyte.gz").read(),
                                            np.uint8, offset=8).astype(np.int64))
    perm = torch.randperm(images.shape[0])

def batch(step):
    if a.model == "lstm":
        x = torch.randint(0, VOCAB, (a.batch, SEQ))
        return x, torch.randint(0, VOCAB, (a.batch * SEQ,))
    i = (step * a.batch) % (images.shape[0] - a.batch)
    idx = perm[i:i + a.batch]
    return images[idx].contiguous(memory_format=memory_format), labels[idx]

def step(s):
    x, y = batch(s)
    opt.zero_grad()
    out = run(x)
    loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y)
    loss.backward()
    opt.step()
    return loss.item()

for s in range(a.warmup):
    step(s)
t0 = time.perf_counter()
for s in range(a.steps):
    loss = step(a.warmup + s)
secs = time.perf_counter() - t0
print(json.dumps({"model": a.model, "threads": torch.get_num_threads(), "batch": a.batch,
                  "steps": a.steps, "examples_per_sec": round(a.batch * a.steps / secs, 2),
                  "ms_per_step": round(1000 * secs / a.steps, 3),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "loss": round(loss, 4), "torch": torch.__version__,
                  "import_rss_mib": round(import_rss_mib, 1),
                  "channels_last": a.channels_last, "compile": a.compile,
                  "mkldnn": torch.backends.mkldnn.is_available()}))
