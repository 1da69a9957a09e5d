"""A distributed training command for the tests: torchrun with 2 processes on the CPU (gloo),
DDP over a tiny model, the trial client reporting from rank 0 only. Every process appends
"pid rank world_size CUDA_VISIBLE_DEVICES" to the file named by --pids."""

import argparse
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ademix_sweep import trial

parser = argparse.ArgumentParser()
parser.add_argument("--pids", required=True)
args = parser.parse_args()

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
with open(args.pids, "a") as f:
    f.write(f"{os.getpid()} {rank} {world} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\n")
t = trial.current()
torch.manual_seed(t.seed)
model = DistributedDataParallel(torch.nn.Linear(8, 1))
opt = t.optimizer(model)
gen = torch.Generator().manual_seed(t.seed + rank)  # each rank its own shard of the data
target = torch.arange(8, dtype=torch.float32) / 8
for step in range(1, t.steps + 1):
    x = torch.randn(32, 8, generator=gen)
    loss = ((model(x).squeeze(1) - x @ target) ** 2).mean()
    opt.zero_grad()
    loss.backward()  # gradients averaged over the ranks
    opt.step()
    if step % t.eval_every == 0:
        value = torch.tensor(loss.item())
        dist.all_reduce(value)  # every rank takes part; rank 0 reports the mean
        t.report(step, value.item() / world)
dist.destroy_process_group()
