"""A training killed with SIGKILL mid-epoch resumes from its last checkpoint to the same result."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from faultdiag.checkpoint import load_checkpoint
from faultdiag.config import load_config
from faultdiag.training import train_model

OVERRIDES = [
    "data.source=simulated", "data.sim_duration_s=1.5", "data.loads=[0]", "data.window_len=256", "data.hop=128",
    "model.widths=[4, 8]", "model.units=[1, 1]", "model.stage_strides=[2, 2]", "model.stem_channels=4",
    "train.epochs=4", "train.batch_size=32", "train.lr=0.01", "train.threads=1", "device=cpu",
    "noise.train=fresh", "noise.train_snr_db=6",
]

# The child sleeps inside every epoch (after the first) so the kill lands mid-epoch; sleeping changes no number.
CHILD = """
import sys, time
import faultdiag.training.loop as loop
orig = loop.run_epoch
def slow(*a, **k):
    if k["epoch"] > 1:
        time.sleep(30)
    return orig(*a, **k)
loop.run_epoch = slow
from faultdiag.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _rows(history):
    return [{k: str(v) for k, v in row.items() if k != "time_s"} for row in history]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_result(tmp_path):
    out = tmp_path / "killed"
    args = ["train", "--out", str(out), "--no-progress"] + [a for o in OVERRIDES for a in ("--set", o)]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 90
    while not (out / "last.pt").is_file():
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "epoch 1 never finished"
        time.sleep(0.05)
    time.sleep(0.3)  # now inside epoch 2
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    killed_state = torch.load(out / "last.pt", weights_only=True)  # intact: written atomically
    assert killed_state["epoch"] == 1 and not killed_state["finished"]
    load_checkpoint(out / "checkpoint.pt")  # the best-so-far checkpoint is intact too

    cfg = load_config(None, OVERRIDES)
    resumed = train_model(cfg, out, resume=True, progress=False)
    full = train_model(cfg, tmp_path / "full", progress=False)
    assert _rows(resumed.history) == _rows(full.history)
    assert resumed.best_epoch == full.best_epoch
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    with open(out / "train_log.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4]
    assert not list(out.glob(".*.tmp"))  # stale temporary files of the killed run are gone
