"""The controller machinery: one watch thread per resource, a delay queue, a worker pool."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from operators.devcluster.simulator.common import Delays, sim_annotations
from operators.devcluster.simulator.kube import (
    DATA_VOLUME,
    FIELD_MANAGER,
    NAMESPACE,
    VM,
    Kube,
    Obj,
    Resource,
    meta,
)
from operators.devcluster.simulator.workqueue import DelayQueue, Key, Timers

log = logging.getLogger("operators.devcluster.simulator")

# Watches end server-side after this long and are resumed from the last resourceVersion;
# stop() does not depend on it (it shuts the sockets), it only bounds a missed shutdown.
WATCH_TIMEOUT = 30
SYNC_TIMEOUT = 30.0
MAX_BACKOFF = 10.0
WATCH_RETRY = 5.0
STOP_TIMEOUT = 2.0


class Reconciler(Protocol):
    kind: str

    def reconcile(self, key: Key) -> float | None:
        """Take at most one step towards the target state; return a requeue delay or None."""


@dataclass(frozen=True)
class Context:
    """What reconcilers share."""

    kube: Kube
    delays: Delays
    timers: Timers


@dataclass(frozen=True)
class Source:
    """A watched resource and the keys an event on one of its objects concerns."""

    resource: Resource
    keys: Callable[[Obj], Iterable[Key]]


class Engine:
    """Runs `Source` watches into a `DelayQueue` drained by `Reconciler` workers."""

    def __init__(self, api_client: client.ApiClient, workers: int) -> None:
        self.api_client = _own_client(api_client, workers)
        self.kube = Kube(self.api_client)
        self.queue = DelayQueue()
        self.timers = Timers()
        self._workers = workers
        self._reconcilers: dict[str, Reconciler] = {}
        self._sources: list[Source] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: dict[Resource, watch.Watch] = {}
        self._lock = threading.Lock()
        self._failures: dict[Key, int] = {}
        self._started = False

    def register(self, reconciler: Reconciler, *sources: Source) -> None:
        self._reconcilers[reconciler.kind] = reconciler
        self._sources.extend(sources)

    def watch(self, *sources: Source) -> None:
        self._sources.extend(sources)

    def start(self, sync_timeout: float = SYNC_TIMEOUT) -> None:
        """Start the watches, wait for their first lists, then start the workers.

        Workers wait for the lists so that state gathered from them (IP addresses in use)
        is complete before anything new is allocated.
        """
        if self._started:
            raise RuntimeError("the simulator was already started")
        self._started = True
        synced = []
        for source in _merged(self._sources):
            done = threading.Event()
            synced.append(done)
            self._spawn(f"sim-watch-{source.resource}", self._watch_loop, source, done)
        deadline = time.monotonic() + sync_timeout
        for done in synced:
            done.wait(max(0.0, deadline - time.monotonic()))
        for index in range(self._workers):
            self._spawn(f"sim-worker-{index}", self._work_loop)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop every thread, within about `timeout` seconds."""
        self._stop.set()
        self.queue.shutdown()
        deadline = time.monotonic() + timeout
        while any(t.is_alive() for t in self._threads) and time.monotonic() < deadline:
            # Again and again: a watch that was just being opened would miss a single stop().
            with self._lock:
                watches = list(self._watches.values())
            for w in watches:
                w.stop()
            for thread in self._threads:
                thread.join(timeout=0.05)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("simulator threads still running after %.1fs: %s", timeout, alive)
        self.api_client.close()

    def enqueue(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self.queue.add(key)

    # -- threads

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _watch_loop(self, source: Source, synced: threading.Event) -> None:
        failures = 0
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list(source)
                    synced.set()
                    if failures:
                        log.info("watching %s again", source.resource)
                        failures = 0
                version = self._watch(source, version)
                continue
            except ApiException as error:
                if error.status == 410:  # our resourceVersion is too old: list afresh
                    log.debug("watching %s: resourceVersion expired, listing", source.resource)
                    version = ""
                    continue
                problem = f"{error.status} {error.reason}"
            except Exception as error:  # a dropped connection: list again after a pause
                problem = repr(error)
            if self._stop.is_set():
                break
            # Warn once, not at every retry: a CRD that is not installed stays so for a while.
            log.log(
                logging.DEBUG if failures else logging.WARNING,
                "watching %s: %s; retrying",
                source.resource,
                problem,
            )
            version = ""
            synced.set()  # a missing CRD must not hold up start()
            failures += 1
            self._stop.wait(min(WATCH_RETRY, 0.2 * 2**failures))

    def _list(self, source: Source) -> str:
        items, version = self.kube.list(source.resource)
        for obj in items:
            self._dispatch(source, obj)
        return version

    def _watch(self, source: Source, version: str) -> str:
        # "object": events stay plain dicts (no model round trip), and ERROR events, 410
        # included, still become ApiExceptions (deserialize=False would skip that).
        watcher = watch.Watch(return_type="object")
        with self._lock:
            self._watches[source.resource] = watcher
        if self._stop.is_set():
            return version
        for event in self.kube.watch(source.resource, watcher, version, WATCH_TIMEOUT):
            obj = event.get("object") or {}
            version = meta(obj).get("resourceVersion") or version
            if event.get("type") != "BOOKMARK":
                self._dispatch(source, obj)
        return version

    def _dispatch(self, source: Source, obj: Obj) -> None:
        try:
            self.enqueue(source.keys(obj))
        except Exception:  # one odd object must not end the watch
            log.exception("mapping a %s event to keys", source.resource)

    def _work_loop(self) -> None:
        while (key := self.queue.get()) is not None:
            delay: float | None = None
            try:
                delay = self._reconcile(key)
            finally:
                self.queue.done(key)
            if delay is not None:
                self.queue.add(key, delay)

    def _reconcile(self, key: Key) -> float | None:
        reconciler = self._reconcilers.get(key.kind)
        if reconciler is None:
            log.error("no reconciler for %s", key)
            return None
        try:
            delay = reconciler.reconcile(key)
        except ApiException as error:
            if self._stop.is_set():
                return None
            message = _api_message(error)
            if error.status == 403 and "being terminated" in message:
                # The namespace goes away with everything in it: nothing left to simulate.
                log.debug("%s: %s", key, message)
                return None
            # A 404 or 409 is a race with another writer (or a just-installed CRD): retry.
            level = logging.INFO if error.status in (404, 409) else logging.WARNING
            log.log(level, "%s: %s %s, retrying", key, error.status, message)
            return self._backoff(key)
        except Exception:
            if self._stop.is_set():
                return None
            log.exception("%s: reconcile failed, retrying", key)
            return self._backoff(key)
        self._failures.pop(key, None)
        return delay

    def _backoff(self, key: Key) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return min(MAX_BACKOFF, 0.1 * 2**failures)


class NamespaceFanout:
    """Maps a namespace whose sim.ostack.dev/ annotations changed to the objects they affect.

    Namespace-level failure injection must reach every VM and DataVolume in it; other
    namespace updates (status, labels) are ignored so they cost nothing.
    """

    def __init__(self, kube: Kube, kinds: dict[Resource, str]) -> None:
        self._kube = kube
        self._kinds = kinds
        self._seen: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def keys(self, namespace: Obj) -> list[Key]:
        name = meta(namespace).get("name", "")
        annotations = sim_annotations(namespace)
        with self._lock:
            changed = self._seen.get(name, {}) != annotations
            self._seen[name] = annotations
        if not changed:
            return []
        keys = []
        for resource, kind in self._kinds.items():
            try:
                items, _ = self._kube.list(resource, name)
            except ApiException as error:
                log.debug("listing %s in %s: %s", resource, name, error.status)
                continue
            keys += [Key(kind, name, meta(item)["name"]) for item in items]
        return keys


def namespace_source(kube: Kube, vm_kind: str, dv_kind: str) -> Source:
    fanout = NamespaceFanout(kube, {VM: vm_kind, DATA_VOLUME: dv_kind})
    return Source(NAMESPACE, fanout.keys)


def _merged(sources: Iterable[Source]) -> list[Source]:
    """One source per resource, so each resource is watched once, whoever needs it."""
    by_resource: dict[Resource, list[Callable[[Obj], Iterable[Key]]]] = {}
    for source in sources:
        by_resource.setdefault(source.resource, []).append(source.keys)

    def fan_out(mappers: list[Callable[[Obj], Iterable[Key]]]) -> Callable[[Obj], list[Key]]:
        return lambda obj: [key for mapper in mappers for key in mapper(obj)]

    return [Source(resource, fan_out(mappers)) for resource, mappers in by_resource.items()]


def _own_client(api_client: client.ApiClient, workers: int) -> client.ApiClient:
    """A client of our own: our user agent, and a pool large enough for every thread."""
    configuration = copy.deepcopy(api_client.configuration)
    configuration.connection_pool_maxsize = max(
        configuration.connection_pool_maxsize or 0, 16 + workers
    )
    own = client.ApiClient(configuration)
    own.user_agent = FIELD_MANAGER
    return own


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)


def log_transition(logger: logging.Logger, what: str, before: object, after: object) -> None:
    logger.info("%s: %s -> %s", what, before or "(none)", after)
