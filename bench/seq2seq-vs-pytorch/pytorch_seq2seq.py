#!/usr/bin/python3
"""PyTorch's side of bench/seq2seq-vs-pytorch: the same models, batch, shapes and optimizer as
seq2seq_bench.cc (see there), printing the same JSON line. Run by run_bench.py under PyTorch 2.x
(the pinned venv) or Debian's 1.13. PyTorch at its best: nn.LSTM is its fused CPU LSTM (one
call per layer and direction); attention is two batched matmuls (torch.bmm) and a softmax;
--compile runs the model under torch.compile (inductor). Every sequence is full length, so
neither side packs or masks."""
import argparse, json, resource, time

import torch

p = argparse.ArgumentParser()
p.add_argument("--model", choices=["rnn", "attention"], default="attention")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--compile", action="store_true")
a = p.parse_args()
import_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
torch.set_num_threads(a.threads)
torch.manual_seed(1)
nn = torch.nn
if a.model == "rnn":
    VOCAB, EMBED, HIDDEN, SRC, TGT = 10000, 256, 256, 30, 30
else:
    VOCAB, EMBED, HIDDEN, SRC, TGT = 32, 32, 128, 12, 16


class Rnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_emb = nn.Embedding(VOCAB, EMBED)
        self.tgt_emb = nn.Embedding(VOCAB, EMBED)
        self.enc = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.dec = nn.LSTM(EMBED + HIDDEN, HIDDEN, batch_first=True)
        self.logits = nn.Linear(HIDDEN, VOCAB)

    def forward(self, src, tgt):
        enc, _ = self.enc(self.src_emb(src))
        te = self.tgt_emb(tgt)
        summary = enc[:, -1:, :].expand(-1, te.shape[1], -1)
        dec, _ = self.dec(torch.cat([te, summary], dim=2))
        return self.logits(dec)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_emb = nn.Embedding(VOCAB, EMBED)
        self.tgt_emb = nn.Embedding(VOCAB, EMBED)
        self.enc1 = nn.LSTM(EMBED, HIDDEN // 2, batch_first=True, bidirectional=True)
        self.enc2 = nn.LSTM(HIDDEN, HIDDEN, batch_first=True)
        self.dec = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.att_out = nn.Linear(2 * HIDDEN, HIDDEN)
        self.logits = nn.Linear(HIDDEN, VOCAB)
        self.scale = HIDDEN ** -0.5

    def forward(self, src, tgt):
        enc, _ = self.enc2(self.enc1(self.src_emb(src))[0])
        dec, _ = self.dec(self.tgt_emb(tgt))
        weights = torch.softmax(torch.bmm(dec, enc.transpose(1, 2)) * self.scale, dim=2)
        context = torch.bmm(weights, enc)
        return self.logits(torch.tanh(self.att_out(torch.cat([context, dec], dim=2))))


model = Rnn() if a.model == "rnn" else Attention()
run = torch.compile(model) if a.compile else model
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def step():
    src = torch.randint(4, VOCAB, (a.batch, SRC))
    tgt = torch.randint(4, VOCAB, (a.batch, TGT))
    out = torch.randint(4, VOCAB, (a.batch * TGT,))
    opt.zero_grad()
    logits = run(src, tgt)
    loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), out)
    loss.backward()
    opt.step()
    return loss.item()


for _ in range(a.warmup):
    step()
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(a.steps):
    loss = step()
secs = time.perf_counter() - t0
cpu_secs = time.process_time() - c0  # every thread of the process, as seq2seq_bench counts
print(json.dumps({"model": a.model, "threads": torch.get_num_threads(), "batch": a.batch,
                  "steps": a.steps, "examples_per_sec": round(a.batch * a.steps / secs, 2),
                  "ms_per_step": round(1000 * secs / a.steps, 3),
                  "cpu_ms_per_step": round(1000 * cpu_secs / a.steps, 3),
                  "ms_per_100_batches": round(100 * 1000 * secs / a.steps, 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "loss": round(loss, 4), "torch": torch.__version__,
                  "import_rss_mib": round(import_rss_mib, 1), "compile": a.compile}))
