"""Multi-process training on PyTorch's own engine (``torch.distributed`` + DistributedDataParallel).

Launch with ``torchrun``; it sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``, which :func:`init_from_env` reads.  Backend: ``gloo`` on CPU, ``nccl`` on GPU
(one GPU per process, ``cuda:LOCAL_RANK``).

Sharding (what :func:`shard` does): every rank draws the *same* shuffled epoch order from the
same seeded generator; each global batch of ``batch_size`` windows is dealt round-robin, so rank
``r`` of ``W`` takes positions ``r, r + W, r + 2W, ...``.  The shards of one epoch are disjoint
and together are exactly the one-process epoch.  With the loss scaled by
``W * n_local / n_global`` the gradient that DDP averages equals the one-process gradient of
the global batch (BatchNorm statistics are per rank, as with any DDP training).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from faultdiag.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """True with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that logs results and writes files."""
        return self.rank == 0


SINGLE = DistContext()


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"The environment variable {name} must be an int; got {text!r}.") from None
    if value < 0:
        raise ConfigError(f"The environment variable {name} must be >= 0; got {value}.")
    return value


def context_from_env(env: Mapping[str, str] | None = None) -> DistContext:
    """Rank, world size and local rank as torchrun sets them (one process when unset)."""
    env = os.environ if env is None else env
    world = max(1, _env_int(env, "WORLD_SIZE", 1))
    rank = _env_int(env, "RANK", 0)
    if rank >= world:
        raise ConfigError(f"The environment variable RANK must be < WORLD_SIZE ({world}); got {rank}.")
    return DistContext(rank=rank, world_size=world, local_rank=_env_int(env, "LOCAL_RANK", 0))


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_env(device: torch.device, timeout_s: float = 1800.0) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes; returns the context and this rank's device.

    One process (no ``WORLD_SIZE`` > 1): nothing happens.  A group that already exists is
    reused (and left to its creator to destroy).  On CUDA each process takes ``cuda:LOCAL_RANK``.
    """
    import torch.distributed as dist

    ctx = context_from_env()
    if not ctx.enabled:
        return SINGLE, device
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {ctx.local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                              "start at most one process per GPU (torchrun --nproc_per_node).")
        torch.cuda.set_device(ctx.local_rank)
        device = torch.device("cuda", ctx.local_rank)
    backend = backend_for(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    if dist.get_world_size() != ctx.world_size or dist.get_rank() != ctx.rank:
        raise ConfigError(f"The process group (rank {dist.get_rank()} of {dist.get_world_size()}) does not match "
                          f"RANK={ctx.rank}, WORLD_SIZE={ctx.world_size}.")
    log.info("rank %d of %d (local %d) joined with %s", ctx.rank, ctx.world_size, ctx.local_rank, backend)
    return DistContext(ctx.rank, ctx.world_size, ctx.local_rank, backend, owns), device


def shutdown(ctx: DistContext) -> None:
    """Destroy the process group if :func:`init_from_env` created it."""
    import torch.distributed as dist

    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def shard(idx: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's share ``idx[rank::world_size]`` of one global batch of indices ``(B,)``."""
    return idx[ctx.rank :: ctx.world_size] if ctx.enabled else idx


def check_batch_size(batch_size: int, ctx: DistContext) -> None:
    """Every rank needs at least two windows per batch (BatchNorm in training mode)."""
    if ctx.enabled and batch_size < 2 * ctx.world_size:
        raise ConfigError(f"The 'train.batch_size' parameter must be at least 2 x the number of processes "
                          f"({2 * ctx.world_size}) so each rank gets two windows per batch; got {batch_size}.")


def all_reduce_sum(values: Sequence[float], ctx: DistContext, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (float64); unchanged with one process."""
    if not ctx.enabled:
        return [float(v) for v in values]
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def all_gather_object(obj: Any, ctx: DistContext) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank; ``[obj]`` with one process."""
    if not ctx.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op with one process)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def wrap_model(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when several processes run, else ``model`` itself."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=device.index if ids else None)
