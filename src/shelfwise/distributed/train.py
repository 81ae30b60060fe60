"""Training the sequential model with Ray Train: PyTorch DistributedDataParallel on `workers` CPU
workers (gloo). Everything else of the fit (text vectors, holdout, blend, transitions) stays on the
driver; each training phase runs as one Ray Train job and its trained network comes back as a
safetensors checkpoint, so the result is a normal model folder.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from shelfwise.distributed.cluster import connect
from shelfwise.models.sequential.training import TrainingJob, TrainResult


class _World:
    """The data-parallel hooks of `train_network` (its `World` protocol) over torch.distributed."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank = rank
        self.size = size

    def wrap(self, module):
        from ray.train.torch import prepare_model

        return prepare_model(module, move_to_device=False)

    def agree(self, flag: bool) -> bool:
        import torch
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)


def _loop(config: dict) -> None:
    """One Ray Train worker: train with the shared seed's window order, rank 0 returns the network."""
    import ray.train
    import torch
    from safetensors.torch import save_file

    from shelfwise.models.sequential import train_network

    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(1)
    torch.manual_seed(config["seed"] + rank)  # ID dropout masks differ per worker, as batches do
    result = train_network(
        config["job"],
        np.random.default_rng(config["rng_seed"]),  # one shuffled order, sharded by rank
        world=_World(rank, size),
    )
    metrics = {"best_epoch": result.best_epoch, "stopped": result.stopped}
    if rank == 0:
        folder = Path(tempfile.mkdtemp(prefix="shelfwise-ray-"))
        state = {k: v.detach().contiguous() for k, v in result.network.state_dict().items()}
        save_file(state, str(folder / "network.safetensors"))
        (folder / "curve.json").write_text(json.dumps(result.curve))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)))
    else:
        ray.train.report(metrics)


def ray_train_runner(*, workers: int = 2, address: str | None = None, storage: str | None = None):
    """A `train_runner` for `SequentialRecommender`: each training phase as a Ray Train job."""

    def run(job: TrainingJob, rng: np.random.Generator) -> TrainResult:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
        from safetensors.torch import load_file

        connect(address)
        config = {"job": job, "rng_seed": int(rng.integers(0, 2**31 - 1)), "seed": job.seed}
        with tempfile.TemporaryDirectory(prefix="shelfwise-ray-train-") as scratch:
            trainer = TorchTrainer(
                _loop,
                train_loop_config=config,
                torch_config=TorchConfig(backend="gloo"),
                scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
                run_config=RunConfig(storage_path=storage or scratch, name="sequential"),
            )
            result = trainer.fit()
            if result.error is not None:
                raise result.error
            if result.checkpoint is None or result.metrics is None:
                raise RuntimeError("the Ray training run ended without a checkpoint")
            with result.checkpoint.as_directory() as folder:
                state = load_file(str(Path(folder) / "network.safetensors"))
                curve = json.loads((Path(folder) / "curve.json").read_text())
        network = job.make_network()
        network.load_state_dict(state)
        return TrainResult(
            network,
            int(result.metrics["best_epoch"]),
            curve,
            workers=workers,
            stopped=str(result.metrics.get("stopped", "epochs")),
        )

    return run
