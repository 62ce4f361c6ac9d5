"""Where synthesis tasks run: in this process, in a local process pool, or on a Ray cluster.

Every engine has the same shape (img2dataset's "distributor"): ``engine.map(fn, tasks)``
runs the picklable module-level function ``fn`` on each task and yields the results
*in task order*, with at most ``max_inflight`` tasks submitted ahead of the consumer
(so a slow writer never lets finished images pile up in memory). Order-preserving
results are what make the shards independent of the worker count.

Worker processes keep per-process state (one GL context, caches) in module globals
of the task's module; ``fn`` must create it lazily on first use.

- :class:`InlineEngine`: the calling process (``--workers 1``). When ``fn`` carries
  ``fn.start(task)``, returning a handle whose ``outcome()`` gives ``fn(task)``, it starts each
  task before taking the previous one's outcome (a worker's background work on one task then
  overlaps the next task; results stay in task order).
- :class:`LocalEngine`: ``multiprocessing`` with the ``spawn`` start method, so every
  worker opens its own GL context from a clean interpreter (a GL context does not
  survive ``fork``).
- :class:`RayEngine`: ``ray.remote`` tasks on a local instance or a cluster
  (``address``); each task asks for one CPU and, when the cluster has GPUs, a GPU
  fraction so several renderers share a GPU.
"""

from __future__ import annotations

import collections
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from conrdata.errors import UserError

ENGINES = ("local", "ray")


class InlineEngine:
    """Runs tasks one after another in this process."""

    name = "inline"
    workers = 1

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        start = getattr(fn, "start", None)
        if start is None:
            for task in tasks:
                yield fn(task)
            return
        # fn.start(task) begins a task and returns a handle whose outcome() finishes it: begin the
        # next task before finishing this one, so its background work overlaps the next's.
        running = None
        try:
            for task in tasks:
                previous, running = running, start(task)
                if previous is not None:
                    yield previous.outcome()
            if running is not None:
                done, running = running, None
                yield done.outcome()
        finally:
            if running is not None:  # the consumer stopped early: let the task's background work end
                running.cancel()

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalEngine(InlineEngine):
    """A pool of ``workers`` spawned processes; ordered results, bounded look-ahead.

    A worker that dies (e.g. a crash inside the GL driver) fails the run with a UserError
    instead of hanging it; rerunning resumes where the writer stopped."""

    name = "local"

    def __init__(self, workers: int = 2, max_inflight: int | None = None):
        if workers < 1:
            raise UserError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self.max_inflight = max_inflight or 2 * workers
        self._pool = None

    def _get_pool(self):
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def map(self, fn, tasks):
        pool = self._get_pool()
        pending: collections.deque = collections.deque()
        try:
            for task in tasks:
                pending.append(pool.submit(fn, task))
                if len(pending) >= self.max_inflight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as err:
            raise UserError(f"a worker process died ({err}); rerun to resume") from err
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayEngine(InlineEngine):
    """Ray tasks. ``address=None`` starts (or joins) a local instance limited to ``workers`` CPUs;
    ``address="auto"`` or ``"ray://host:10001"`` joins a running cluster, whose nodes need
    conr-toolkit installed (task arguments carry file paths: put characters and OUT on shared
    storage). A task lost with its node fails the run with a UserError; rerunning resumes."""

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, gpu_fraction: float | None = None,
                 max_inflight: int | None = None):
        try:
            import ray  # optional dependency (the `ray` extra)
        except ImportError as err:
            raise UserError("the ray engine needs `pip install 'conr-toolkit[ray]'`") from err
        self.ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict = {"include_dashboard": False, "ignore_reinit_error": True, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = workers
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise UserError(f"cannot start or reach Ray ({err})", address) from err
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", workers))
        self.workers = max(1, cpus if address else workers)
        gpus = float(ray.cluster_resources().get("GPU", 0.0))
        if gpu_fraction is None:
            gpu_fraction = 0.25 if gpus > 0 else 0.0
        self.gpu_fraction = gpu_fraction
        self.max_inflight = max_inflight or 2 * self.workers
        self._remote_cache: dict = {}

    def _remote(self, fn):
        remote = self._remote_cache.get(fn)
        if remote is None:
            options = {"num_cpus": 1, "max_retries": 1}
            if self.gpu_fraction:
                options["num_gpus"] = self.gpu_fraction
            remote = self.ray.remote(**options)(fn)
            self._remote_cache[fn] = remote
        return remote

    def map(self, fn, tasks):
        remote = self._remote(fn)
        pending: collections.deque = collections.deque()
        try:
            for task in tasks:
                pending.append(remote.remote(task))
                if len(pending) >= self.max_inflight:
                    yield self.ray.get(pending.popleft())
            while pending:
                yield self.ray.get(pending.popleft())
        except self.ray.exceptions.RayError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"a Ray task failed ({first}); rerun to resume") from err
        finally:
            for ref in pending:
                self.ray.cancel(ref)

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False


def make_engine(name: str = "local", workers: int = 1, address: str | None = None):
    """``local`` with one worker runs inline; more workers use a process pool; ``ray`` uses Ray."""
    if name == "local":
        return InlineEngine() if workers <= 1 else LocalEngine(workers)
    if name == "ray":
        return RayEngine(workers=max(1, workers), address=address)
    raise UserError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
