"""Start or join the Ray cluster and deploy the Engine replicas (``--replicas N``, ``--ray-address ADDR``).

Without ``--ray-address`` a private single-node cluster is started on this machine: no dashboard, no HTTP
proxy (the front serves HTTP itself; Serve is reached through a deployment handle), a small object store,
usage statistics off, and nothing reached over the network. With it, the front joins an existing cluster
(``ray start --head`` on one machine, ``ray start --address=...`` on the others) and the replicas go wherever
the cluster has a GPU (or a CPU, when the front has no GPU).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

APP_NAME = "sd-webui"
NAMESPACE = "sd-webui"
OBJECT_STORE_BYTES = 128 * 1024 * 1024  # results are a few images; Ray's minimum is 75 MiB
BOARD_TIMEOUT_S = 5.0
START_TIMEOUT_S = 600.0


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.serve") is not None


@dataclass
class Cluster:
    handle: Any  # DeploymentHandle of EngineReplica
    board: Any  # ActorHandle of ControlBoard
    replicas: int
    owns_ray: bool
    torch_threads: int = 0  # per CPU replica (0: torch's default)

    def board_call(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self.board, method).remote(*args), timeout=BOARD_TIMEOUT_S)

    @staticmethod
    def is_replica_loss(exc: BaseException) -> bool:
        """Whether ``exc`` means the replica (its process or node) went away, not that the job failed."""
        from ray import exceptions as rex

        lost = tuple(getattr(rex, name) for name in ("RayActorError", "ActorDiedError", "ActorUnavailableError",
                                                        "NodeDiedError", "WorkerCrashedError", "OwnerDiedError")
                     if hasattr(rex, name))
        return isinstance(exc, lost) or isinstance(getattr(exc, "cause", None), lost)

    def replica_identities(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Each live replica's pid and load count, read from the board's latest reports."""
        return [{"key": k, **v} for k, v in (self.board_call("snapshots") or {}).items()]

    def shutdown(self) -> None:
        import ray
        from ray import serve

        try:
            serve.delete(APP_NAME)
        except Exception as exc:  # already gone
            log.debug("serve.delete: %s", exc)
        if self.owns_ray:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()


def resources(replicas: int, cuda: bool) -> tuple[dict[str, Any], int]:
    """(Ray options of one replica, torch threads for it): a GPU each when there are GPUs, else a CPU share."""
    if cuda:
        return {"num_gpus": 1, "num_cpus": 1}, 0
    cpus = os.cpu_count() or 1
    return {"num_cpus": 1}, max(1, cpus // max(1, replicas))


def start(args: Any, repo_root: Path, *, replicas: int | None = None) -> Cluster:
    """Start (or join) Ray, deploy ``replicas`` Engine replicas and wait until they are ready."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Replica processes import this repository's packages: they inherit the environment of the raylet.
    path = os.environ.get("PYTHONPATH", "")
    if str(repo_root) not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root), path) if p)
    import ray
    from ray import serve

    from modules.cluster.board import ControlBoard
    from modules.cluster.replica import EngineReplica

    count = int(replicas or args.replicas)
    import torch

    cuda = torch.cuda.is_available() and not getattr(args, "use_cpu", None)
    actor_options, threads = resources(count, cuda)
    address = getattr(args, "ray_address", None)
    owns_ray = not ray.is_initialized() and not address
    if not ray.is_initialized():
        if address:
            # Workers on other machines do not inherit this environment: the path to the repository (the same on
            # every machine) goes with the job.
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
        else:
            ray.init(num_cpus=max(count, 1) * actor_options.get("num_cpus", 1), object_store_memory=OBJECT_STORE_BYTES,
                     include_dashboard=False, log_to_driver=False, namespace=NAMESPACE)
    serve.start(proxy_location="Disabled")
    board = ray.remote(num_cpus=0)(ControlBoard).remote()
    deployment = EngineReplica.options(
        num_replicas=count, max_ongoing_requests=1, ray_actor_options=actor_options,
        health_check_period_s=2, health_check_timeout_s=30, graceful_shutdown_timeout_s=5)
    log.info("Starting %d engine replica(s) on Ray (%s)", count, address or "local cluster")
    handle = serve.run(deployment.bind(args, str(repo_root), board, threads), name=APP_NAME, route_prefix=None)
    return Cluster(handle=handle, board=board, replicas=count, owns_ray=owns_ray, torch_threads=threads)
