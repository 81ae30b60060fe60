"""The same jobs on a Ray cluster: batch encoding (Ray Data), training the sequential model (Ray
Train, PyTorch DDP) and scoring evaluated users (Ray tasks). Needs the ``distributed`` extra; the
local default never imports Ray.

Every entry point takes ``address``: None starts (or joins) a local Ray instance, ``auto`` joins the
cluster this machine belongs to, ``ray://host:10001`` connects a client to a remote one.
"""

from shelfwise.distributed.cluster import connect
from shelfwise.distributed.encode import ray_stream
from shelfwise.distributed.evaluate import ray_recommend
from shelfwise.distributed.train import ray_train_runner

__all__ = ["connect", "ray_recommend", "ray_stream", "ray_train_runner"]
