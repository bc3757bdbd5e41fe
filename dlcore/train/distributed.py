"""Data-parallel training over several processes with torch.distributed (DistributedDataParallel).

``torchrun`` starts one process per GPU (or per CPU worker, with gloo); each reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from its environment. :func:`init_from_env` joins the process group
(nccl on GPUs, gloo on the CPU) and pins the process to its GPU; the :class:`~dlcore.train.trainer.Trainer`
then finds the group by itself, wraps the model in DDP and splits every global batch across the ranks.
Only rank 0 writes to the run store and saves checkpoints, so a distributed run appears in the app like
any other; the other ranks read the run's specs and follow.

Two ways in, both checked by ``dlcore.train.prepare.prepare_run`` like any run:
    torchrun --standalone --nproc_per_node=2 -m dlcore train --data mnist5k --model seed-cnn
    run_id = start_distributed_run(DataSpec(), get_preset("seed-cnn"), TrainSpec(), nproc=2)  # background
A stopped run continues on N processes with ``resume_run(run_id, nproc=N)`` (``python -m dlcore resume
RUN_ID --nproc N``).

``--batch-size`` is the *global* batch: with N processes each handles batch_size / N examples per step,
so the loss curve matches a single process with the same batch size.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlcore.runs.store import RunStore
from dlcore.specs import DataSpec, TrainSpec

if TYPE_CHECKING:
    from dlcore.models import ModelConfig


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a distributed run (rank 0 of 1 when started without torchrun)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env() -> DistEnv:
    """The launcher's environment variables (RANK, WORLD_SIZE, LOCAL_RANK), without joining any group."""
    def num(name: str, default: int) -> int:
        try:
            return int(os.environ.get(name, default))
        except ValueError:
            return default
    return DistEnv(num("RANK", 0), num("WORLD_SIZE", 1), num("LOCAL_RANK", 0))


def init_from_env(device: str = "auto") -> DistEnv:
    """Join the process group described by torchrun's environment; a no-op for a single process.

    Args:
        device: the run's TrainSpec.device; 'cpu' uses gloo even on a GPU machine.

    Raises:
        TrainingError: more processes on this node than GPUs.
    """
    import torch
    import torch.distributed as dist

    from dlcore.errors import TrainingError

    e = env()
    if e.world_size <= 1:
        return e
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        if e.local_rank >= torch.cuda.device_count():
            raise TrainingError(f"process {e.local_rank} of this node has no GPU: {torch.cuda.device_count()} "
                                "visible; use --nproc_per_node at most the number of GPUs")
        torch.cuda.set_device(e.local_rank)
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, device_id=torch.device("cuda", e.local_rank) if use_cuda else None)
    return DistEnv(e.rank, e.world_size, e.local_rank, backend)


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def destroy() -> None:
    """Leave the process group (no-op without one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_text(text: str, src: int = 0) -> str:
    """Rank ``src``'s short string on every rank (sent as bytes in a tensor: nothing is unpickled)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return text
    buf = torch.zeros(256, dtype=torch.uint8)
    data = text.encode()[:255]
    buf[: len(data)] = torch.tensor(list(data), dtype=torch.uint8)
    if dist.get_backend() == "nccl":
        buf = buf.cuda()
    dist.broadcast(buf, src)
    return bytes(buf.cpu().tolist()).rstrip(b"\0").decode()


def _follow(run_id: str, store: RunStore, resume: bool) -> str:
    """Ranks > 0: train the stored run without writing anything; rank 0 records it (see run_rank)."""
    from dlcore.data import load_dataset
    from dlcore.runs.checkpoint import CheckpointError, resume_state
    from dlcore.train.trainer import Trainer

    while (run := store.get(run_id)).status == "queued":  # rank 0 waits for a slot in the queue
        time.sleep(0.5)
    if run.status != "running":
        return run.status  # cancelled while queued: rank 0 leaves too
    state = None
    if resume:
        try:
            state = resume_state(store.run_dir(run_id))
        except CheckpointError:
            state = None
    init = None
    if run.train.init_from and state is None:  # the same start as rank 0 (DDP broadcasts it too)
        from dlcore.transfer import parent_tensors
        init = parent_tensors(run.train.init_from, store)
    trainer = Trainer(run.model, load_dataset(run.data), run.train, state=state, init=init)
    summary = trainer.fit()
    return "completed" if summary["completed"] else "cancelled"


def run_rank(run_id: str, store: RunStore, resume: bool = False, callbacks: list | None = None) -> str:
    """Train a stored run as this process's rank: rank 0 records it (``run_job``), the others follow.

    Returns the run's final status as this rank sees it.
    """
    from dlcore.train.worker import run_job

    if env().rank == 0:
        return run_job(run_id, store, resume=resume, callbacks=callbacks)
    return _follow(run_id, store, resume)


def main(argv: list[str] | None = None) -> int:
    """Entry of every rank started by :func:`start_distributed_run` (``torchrun -m dlcore.train.distributed``)."""
    p = argparse.ArgumentParser(description="Train one stored run with DistributedDataParallel (under torchrun).")
    p.add_argument("run_id")
    p.add_argument("--root", default=None, help="the data folder holding store.db (default: DLE_DATA_DIR)")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    store = RunStore(args.root)
    e = env()
    try:
        init_from_env(store.get(args.run_id).train.device)
        status = run_rank(args.run_id, store, resume=args.resume)
    except Exception:
        # rank 0 records its own failures in run_job; here: failing to join the group, or a follower's error
        print(f"rank {e.rank}: {traceback.format_exc()}", file=sys.stderr, flush=True)
        if e.rank == 0 and store.get(args.run_id).status in ("queued", "running"):
            store.update(args.run_id, status="failed", finished=time.time(),
                         error=f"the distributed run could not start: {traceback.format_exc(limit=1).strip()[-300:]}")
        return 1
    finally:
        destroy()
    return 0 if status in ("completed", "cancelled") else 1


def torchrun_command(nproc: int, module_args: list[str], standalone: bool = True) -> list[str]:
    """``python -m torch.distributed.run`` (= torchrun) for ``nproc`` processes on this machine."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if standalone:
        cmd.append("--standalone")  # a private rendezvous on a free local port: runs do not collide
    return cmd + module_args


def start_distributed_run(data: DataSpec, model: ModelConfig, train: TrainSpec, nproc: int,
                          name: str | None = None, store: RunStore | None = None, owner: str = "") -> str:
    """Queue a run trained by ``nproc`` processes (all GPUs of this machine, or gloo workers on the CPU).

    ``start_run(..., nproc=nproc)``: checked like any run, recorded as queued, its id returned at once;
    torchrun runs in the background, in its own session, logging to the run's ``worker.log``.
    ``train.batch_size`` is the global batch, split across the processes.

    Args:
        nproc: processes; at most the number of GPUs when training on CUDA.

    Raises:
        SpecError, ResourceError: as ``start_run``; TrainingError: nproc does not fit the batch or the machine.
    """
    from dlcore.train.jobs import start_run

    return start_run(data, model, train, name=name, store=store, owner=owner, nproc=nproc)


if __name__ == "__main__":
    sys.exit(main())
