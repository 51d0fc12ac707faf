"""Distributed training: sharding properties, and 2 CPU processes (gloo, 127.0.0.1) under torchrun."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys

import pytest
import torch

from faultdiag.checkpoint import load_checkpoint
from faultdiag.config import load_config
from faultdiag.distributed import DistContext, check_batch_size, context_from_env, shard
from faultdiag.errors import ConfigError
from faultdiag.training import train_model
from faultdiag.training.loop import batch_bounds

TINY_TOML = """
seed = 0
device = "cpu"
[data]
source = "simulated"
sim_duration_s = 2.0
loads = [0]
window_len = 256
hop = 128
[model]
name = "drsn-cw"
widths = [4, 8]
units = [1, 1]
stage_strides = [2, 2]
stem_channels = 4
[train]
epochs = 3
batch_size = 32
lr = 0.01
threads = 1
"""


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_are_disjoint_and_cover_every_batch(world):
    perm = torch.randperm(101, generator=torch.Generator().manual_seed(0))
    for start, stop in batch_bounds(101, 16, world):
        parts = [shard(perm[start:stop], DistContext(rank=r, world_size=world)) for r in range(world)]
        assert min(len(p) for p in parts) >= 2  # BatchNorm needs two windows per rank
        joined = torch.cat(parts)
        assert sorted(joined.tolist()) == sorted(perm[start:stop].tolist())  # disjoint, complete
    covered = sum(stop - start for start, stop in batch_bounds(101, 16, world))
    assert covered >= 101 - 2 * world  # only a short trailing batch is dropped


def test_context_from_env_and_batch_size_check():
    assert context_from_env({}) == DistContext()
    ctx = context_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.enabled, ctx.is_main) == (1, 2, 1, True, False)
    with pytest.raises(ConfigError, match="RANK"):
        context_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        context_from_env({"WORLD_SIZE": "two"})
    with pytest.raises(ConfigError, match="batch_size"):
        check_batch_size(3, DistContext(rank=0, world_size=2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_two_process_gloo_training_matches_one_process(tmp_path):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY_TOML, encoding="utf-8")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "faultdiag", "train", "--config", str(cfg_path),
           "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained drsn-cw") == 1  # only rank 0 reports
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml", "last.pt", "metrics.json",
                                                      "train_log.csv"]  # no temporary or per-rank files
    ddp = _log(out / "train_log.csv")
    single = train_model(load_config(cfg_path), tmp_path / "single", progress=False).history
    assert len(ddp) == len(single) == 3
    # Same epoch order, same windows: metrics are reduced over both ranks (whole train/val sets),
    # so they follow the one-process run closely (BatchNorm statistics are per rank).
    for a, b in zip(ddp, single):
        assert float(a["lr"]) == pytest.approx(b["lr"])
        assert float(a["train_loss"]) == pytest.approx(b["train_loss"], rel=0.05)
    assert abs(float(ddp[-1]["val_acc"]) - single[-1]["val_acc"]) < 0.1
    assert float(ddp[-1]["val_acc"]) > 0.25 + 0.1  # learns (4 classes)
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck.class_names == ("normal", "inner_race", "outer_race", "ball")
    assert not any(k.startswith("module.") for k in ck.state_dict)  # the bare model, not the DDP wrapper
    raw = torch.load(out / "last.pt", weights_only=True)
    assert raw["world_size"] == 2 and len(raw["rng"]["noise_ranks"]) == 2
