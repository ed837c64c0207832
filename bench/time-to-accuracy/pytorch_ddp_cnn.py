"""PyTorch's side of bench/time-to-accuracy, CNN: the README's main job (examples/fashion-mnist.yaml)
as DistributedDataParallel over gloo, one process per worker, started by
`torchrun --nproc-per-node 2`. Same model (conv 5x5x32 pad 2, relu, max 2x2, conv 5x5x64 pad 2,
relu, max 2x2, fc 1024, relu, fc 10), same initialisation rules (conv: He normal, fc: Xavier
uniform, biases zero), same data (Fashion-MNIST pixels / 255; each rank a shuffled half, batch 64
per rank = 128 per step), same optimizer (SGD momentum 0.9, weight decay 5e-4, lr 0.02 on a
per-step cosine to 0 over all steps), same evaluation (the whole test set after every pass, split
over the ranks and summed). Rank 0 prints one JSON line per pass:
  {"event": "pass", "pass": 1, "test_accuracy": ..., "test_loss": ..., "train_loss": ...}
and the settings as {"event": "settings", ...} first. The runner stamps the lines as they arrive.
"""
import argparse, gzip, json, math, os

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
p.add_argument("--passes", type=int, default=2)
p.add_argument("--batch", type=int, default=64, help="per rank")
p.add_argument("--lr", type=float, default=0.02)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--train-limit", type=int, default=0, help="first N training examples only (as spec.data.train.limit)")
p.add_argument("--test-limit", type=int, default=0, help="first N test examples only")
p.add_argument("--channels-last", action="store_true")
p.add_argument("--compile", action="store_true")
a = p.parse_args()

torch.set_num_threads(a.threads)
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()


def idx(name, offset, shape):
    with gzip.open(os.path.join(a.data, name)) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).reshape(shape)


def images(name):
    return torch.from_numpy(idx(name, 16, (-1, 1, 28, 28)).astype(np.float32) / 255.0)


def labels(name):
    return torch.from_numpy(idx(name, 8, (-1,)).astype(np.int64))


train_x, train_y = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
test_x, test_y = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
if a.train_limit:
    train_x, train_y = train_x[:a.train_limit], train_y[:a.train_limit]
if a.test_limit:
    test_x, test_y = test_x[:a.test_limit], test_y[:a.test_limit]

torch.manual_seed(a.seed)
model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Linear(1024, 10))
for m in model:
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
model = model.to(memory_format=memory_format)
ddp = nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's weights
net = torch.compile(ddp) if a.compile else ddp

# Each rank a shuffled half per pass, as Tandem's reader: DistributedSampler's split, re-drawn
# per pass; the last batch of a pass is short, none dropped.
sampler = torch.utils.data.DistributedSampler(range(len(train_x)), num_replicas=world, rank=rank,
                                              shuffle=True, seed=a.seed)
steps_per_pass = math.ceil(len(sampler) / a.batch)
total = steps_per_pass * a.passes
opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
# Tandem's cosine: lr(step) = 0.5 lr (1 + cos(pi min(1, step / (total - 1)))), step from 0.
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total - 1)))))

if rank == 0:
    print(json.dumps({"event": "settings", "torch": torch.__version__, "world": world,
                      "threads": torch.get_num_threads(), "channels_last": a.channels_last,
                      "compile": a.compile, "mkldnn": torch.backends.mkldnn.is_available(),
                      "steps_per_pass": steps_per_pass}), flush=True)

test_part = torch.arange(rank, len(test_x), world)
for pass_ in range(a.passes):
    sampler.set_epoch(pass_)
    order = torch.tensor(list(iter(sampler)))
    net.train()
    loss_sum = torch.zeros(2, dtype=torch.float64)
    for s in range(steps_per_pass):
        i = order[s * a.batch:(s + 1) * a.batch]
        x = train_x[i].contiguous(memory_format=memory_format)
        loss = F.cross_entropy(net(x), train_y[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += torch.tensor([loss.item() * len(i), len(i)], dtype=torch.float64)
    net.eval()
    stats = torch.zeros(3, dtype=torch.float64)  # correct, count, test loss sum
    with torch.no_grad():
        for b in range(0, len(test_part), 1000):
            i = test_part[b:b + 1000]
            out = net(test_x[i].contiguous(memory_format=memory_format))
            stats[0] += (out.argmax(1) == test_y[i]).sum().item()
            stats[1] += len(i)
            stats[2] += F.cross_entropy(out, test_y[i], reduction="sum").item()
    stats = torch.cat([stats[:3], loss_sum])
    dist.all_reduce(stats)
    if rank == 0:
        print(json.dumps({"event": "pass", "pass": pass_ + 1, "test_accuracy": stats[0].item() / stats[1].item(),
                          "test_loss": stats[2].item() / stats[1].item(),
                          "train_loss": stats[3].item() / stats[4].item()}), flush=True)
dist.destroy_process_group()
