#!/usr/bin/env python3
"""The schedule P8's placement policies would give with zero overhead: a discrete-event simulation.

Suites all arrive at time 0 in the given order (their index is their age: lower = older); each
one holds a lab slot for `test` seconds of tests, after `up` seconds of bring-up when the
slot's lab is not its own. A hand-over, a teardown and every request take no time. Policies:

- `fifo`: the oldest waiting suite takes a free slot and always brings its lab up (nothing is
  kept): the original 1.4.0 server and ours with default flags.
- `warm`: the oldest waiting suite goes to the free slot running its lab, else an empty one,
  else the one idle longest; a slot keeps its last lab (`--keep-idle-lab` + declared labs).
- `batch:K`: as `warm`, but when a slot frees keeping lab X, the first waiting suite whose lab
  is X is promoted ahead of older ones, provided none of those it overtakes has already been
  overtaken K times; else the oldest waiting suite (`--placement batch --max-bypass K`).

Usage: bench/makespan_sim.py [--self-test] [--up S] [--test S]
Prints the simulated makespans of every policy for P8's 12 suites, as a Markdown table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

UP_SECONDS, TEST_SECONDS = 20.0, 10.0
POLICIES = ("fifo", "warm", "batch:2", "batch:6")


def suite_labs(order: str, count: int = 12, labs: str = "XYZ") -> list[str]:
    """Each suite's lab, in arrival order: `interleaved` X Y Z X Y Z …, `grouped` X X X X Y Y Y Y …"""
    if order == "interleaved":
        return [labs[i % len(labs)] for i in range(count)]
    if order == "grouped":
        per_lab = -(-count // len(labs))
        return [labs[i // per_lab] for i in range(count)]
    raise ValueError(f"unknown order {order!r}")


@dataclass
class Slot:
    """A lab slot: the lab it runs or keeps (None: empty), when it frees and since when it idles (s)."""

    lab: str | None = None
    free_at: float = 0.0


@dataclass
class Schedule:
    """What a policy did: per suite (by arrival index) its promotion and lab-up times (s), and the totals."""

    promoted: list[float] = field(default_factory=list)
    lab_up: list[float] = field(default_factory=list)
    makespan: float = 0.0
    ups: int = 0
    busy: float = 0.0  # slot-seconds spent bringing up or holding

    def overtaken(self) -> list[int]:
        """Per suite: how many younger suites were promoted before it."""
        return overtaken_counts(self.promoted)


def overtaken_counts(promoted: list[float]) -> list[int]:
    """Per suite (index = arrival order): how many later arrivals were promoted strictly before it."""
    return [sum(1 for j in range(i + 1, len(promoted)) if promoted[j] < promoted[i]) for i in range(len(promoted))]


def _place(slots: list[Slot], free: list[int], lab: str) -> int:
    """The free slot for `lab`: the one running it, else an empty one, else the one idle longest."""
    for wanted in (lambda s: s.lab == lab, lambda s: s.lab is None):
        for index in free:
            if wanted(slots[index]):
                return index
    return min(free, key=lambda index: slots[index].free_at)


def simulate(labs: list[str], slots: int, policy: str, up: float = UP_SECONDS, test: float = TEST_SECONDS) -> Schedule:
    """Runs the suites `labs` (arrival order) on `slots` slots under `policy` (see the module doc)."""
    warm = policy != "fifo"
    max_bypass = int(policy.split(":")[1]) if policy.startswith("batch:") else None
    state = [Slot() for _ in range(slots)]
    waiting = list(range(len(labs)))
    bypassed = [0] * len(labs)  # times each suite was overtaken so far
    out = Schedule(promoted=[0.0] * len(labs), lab_up=[0.0] * len(labs))
    now = 0.0
    while waiting:
        free = [i for i, s in enumerate(state) if s.free_at <= now]
        if not free:
            now = min(s.free_at for s in state)
            continue
        # The slot that freed first (ties: the lowest number) chooses first.
        first = min(free, key=lambda i: (state[i].free_at, i))
        suite, slot = waiting[0], None
        if max_bypass is not None and state[first].lab is not None:
            for position, candidate in enumerate(waiting):
                if labs[candidate] == state[first].lab:
                    if all(bypassed[older] < max_bypass for older in waiting[:position]):
                        suite, slot = candidate, first
                        for older in waiting[:position]:
                            bypassed[older] += 1
                    break
        if slot is None:
            slot = _place(state, free, labs[suite]) if warm else first
        waiting.remove(suite)
        bring_up = up if not warm or state[slot].lab != labs[suite] else 0.0
        out.ups += bring_up > 0
        out.promoted[suite] = now
        out.lab_up[suite] = now + bring_up
        state[slot].lab = labs[suite] if warm else None
        state[slot].free_at = now + bring_up + test
        out.busy += bring_up + test
    out.makespan = max(s.free_at for s in state)
    return out


def expect(actual: object, wanted: object, what: str) -> None:
    """An assert that ruff's S101 allows: raises AssertionError naming `what` on a mismatch."""
    if actual != wanted:
        raise AssertionError(f"{what}: {actual!r}, expected {wanted!r}")


def self_test() -> None:
    """The sanity figures of the brief (1 slot: the bound is 3 * 20 + 12 * 10 = 180 s)."""
    interleaved, grouped = suite_labs("interleaved"), suite_labs("grouped")
    expect("".join(interleaved), "XYZXYZXYZXYZ", "interleaved order")
    expect("".join(grouped), "XXXXYYYYZZZZ", "grouped order")
    expect(simulate(interleaved, 1, "fifo").makespan, 360, "fifo, interleaved, 1 slot")
    expect(simulate(interleaved, 2, "fifo").makespan, 180, "fifo, interleaved, 2 slots")
    expect(simulate(interleaved, 1, "batch:2").makespan, 240, "batch K=2, interleaved, 1 slot")
    expect(max(simulate(interleaved, 1, "batch:2").overtaken()), 2, "batch K=2: most overtakes")
    expect(simulate(interleaved, 1, "batch:6").makespan, 180, "batch K=6, interleaved, 1 slot")
    expect(simulate(grouped, 1, "warm").makespan, 180, "fifo+warm, grouped, 1 slot")
    expect(simulate(grouped, 1, "warm").ups, 3, "fifo+warm, grouped, 1 slot: bring-ups")
    expect(max(simulate(grouped, 1, "batch:6").overtaken()), 0, "batch K=6, grouped: overtakes")
    print("makespan_sim self-test passed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--self-test", action="store_true", help="check the known figures, print nothing else")
    parser.add_argument("--up", type=float, default=UP_SECONDS, help="bring-up seconds (default 20)")
    parser.add_argument("--test", type=float, default=TEST_SECONDS, help="test seconds per suite (default 10)")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    print("| policy | order | slots | makespan (s) | `netlab up` | wait mean (s) | wait max (s) | max overtaken |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for policy in POLICIES:
        for order in ("interleaved", "grouped"):
            for slots in (1, 2):
                s = simulate(suite_labs(order), slots, policy, args.up, args.test)
                mean = sum(s.lab_up) / len(s.lab_up)
                print(
                    f"| {policy} | {order} | {slots} | {s.makespan:.0f} | {s.ups} | {mean:.1f} | "
                    f"{max(s.lab_up):.0f} | {max(s.overtaken())} |"
                )


if __name__ == "__main__":
    main()
