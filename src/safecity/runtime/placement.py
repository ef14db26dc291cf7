"""Where each camera of a cluster runs: pure functions, no Ray.

The camera is the unit of placement. :func:`place_cameras` gives each alive
node a share of the cameras in proportion to its capacity (its CPUs divided by
the CPUs a camera reserves), keeps every camera where it is while its node is
within its share, and moves only the surplus — so a node that joins takes
cameras from the busiest nodes, and the cameras of a lost node go to those with
room. :func:`pack_workers` then fills a node's worker processes, each hosting up
to ``per_worker`` cameras, so models load once per process.

>>> place_cameras(["a", "b", "c", "d"], {"n1": 4, "n2": 4}, {"a": "n1", "b": "n1", "c": "n1"})
{'a': 'n1', 'b': 'n1', 'c': 'n2', 'd': 'n2'}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


def shares(total: int, capacities: Mapping[str, int]) -> dict[str, int]:
    """How many of ``total`` cameras each node should host: proportional to capacity.

    Largest remainders break ties, then node id, so the answer is stable. A
    node's share never exceeds its capacity unless every node is full (then the
    excess is spread the same way: a camera overloaded beats a camera not run).

    >>> shares(5, {"a": 2, "b": 2})
    {'a': 3, 'b': 2}
    """
    nodes = sorted(n for n, c in capacities.items() if c > 0) or sorted(capacities)
    if not nodes:
        return {}
    weights = {n: max(capacities[n], 0) or 1 for n in nodes}
    room = sum(weights.values())
    exact = {n: total * weights[n] / room for n in nodes}
    result = {n: int(exact[n]) for n in nodes}
    left = total - sum(result.values())
    for node in sorted(nodes, key=lambda n: (-(exact[n] - result[n]), n))[:left]:
        result[node] += 1
    return result


def place_cameras(
    cameras: Sequence[str], capacities: Mapping[str, int], current: Mapping[str, str]
) -> dict[str, str]:
    """Camera → node for the alive nodes in ``capacities``, moving as few cameras as it can.

    ``current`` is where cameras run now (entries on nodes no longer alive are
    ignored: those cameras must move).
    """
    target = shares(len(cameras), capacities)
    if not target:
        return {}
    placed: dict[str, str] = {}
    load = dict.fromkeys(target, 0)
    # Keep cameras on their node while the node is within its share.
    for camera in cameras:
        node = current.get(camera)
        if node in target and load[node] < target[node]:
            placed[camera] = node
            load[node] += 1
    # The rest (new, orphaned, surplus) go to the nodes furthest below their share.
    for camera in cameras:
        if camera in placed:
            continue
        node = min(target, key=lambda n: (load[n] - target[n], load[n], n))
        placed[camera] = node
        load[node] += 1
    return placed


def pack_workers(
    cameras: Sequence[str],
    workers: Sequence[str],
    current: Mapping[str, str],
    per_worker: int,
    new_worker: Callable[[], str],
) -> dict[str, str]:
    """Camera → worker on one node: keep cameras on their worker, fill up to ``per_worker``.

    ``workers`` are the node's workers in order; ``new_worker()`` names another
    when they are all full. Returns the assignment (workers left without a
    camera simply get none).
    """
    load = dict.fromkeys(workers, 0)
    placed: dict[str, str] = {}
    for camera in cameras:
        worker = current.get(camera)
        if worker in load and load[worker] < per_worker:
            placed[camera] = worker
            load[worker] += 1
    for camera in cameras:
        if camera in placed:
            continue
        free = [w for w in load if load[w] < per_worker]
        worker = free[0] if free else new_worker()
        load.setdefault(worker, 0)
        placed[camera] = worker
        load[worker] += 1
    return placed
