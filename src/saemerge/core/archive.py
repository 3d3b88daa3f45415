"""The SAE archive: initial selection, pairing and replacement (SAE-SPEC §3, §4, §6.1).

Deterministic tie-breaks everywhere, so a run replays exactly:
- "best" means highest fitness, then smallest id; "worst" means lowest fitness, then
  smallest id (ids embed the generation, so among equals the oldest goes first);
- offspring are processed in the order given (the pair order), each against the archive
  as already updated by the earlier ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from saemerge.errors import SaeMergeError, unknown_name

COMPETITIONS = ("local", "global", "local_then_global")


@dataclass(frozen=True)
class Member:
    """One individual: a checkpoint with its evaluation.

    Attributes:
        id: unique name (e.g. ``g03-p1``).
        content_hash: hash of the checkpoint's tensors (see :mod:`saemerge.core.hashing`).
        fitness: ``score + γ·ρ``.
        score: macro-averaged performance.
        sparsity: global ρ.
        parents: ids of the parents (empty for initial members).
        generation: generation in which it was created.
    """

    id: str
    content_hash: str
    fitness: float
    score: float
    sparsity: float
    parents: tuple[str, ...] = ()
    generation: int = 0


@dataclass(frozen=True)
class ArchiveEvent:
    """What happened to one offspring in :func:`update_archive`.

    Attributes:
        offspring: the offspring's id.
        outcome: ``added`` (archive below size), ``replaced`` or ``rejected``.
        rule: ``below_size``, ``local``, ``global``, ``duplicate``, or for a rejection
            by competition the competition mode.
        replaced: id of the member it replaced, if any.
        reason: one human-readable line.
    """

    offspring: str
    outcome: str
    rule: str
    replaced: str | None
    reason: str


def _best_key(m: Member):
    return (-m.fitness, m.id)


def _worst_key(m: Member):
    return (m.fitness, m.id)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise SaeMergeError(f"--archive-size {size!r} must be a whole number of at least 1")
    return size


def best_member(members: Sequence[Member]) -> Member:
    """Highest fitness; ties go to the smallest id."""
    if not members:
        raise SaeMergeError("no members to choose from (empty archive)")
    return min(members, key=_best_key)


def initial_archive(candidates: Sequence[Member], size: int = 8) -> list[Member]:
    """The best ``size`` candidates by fitness (ties: smallest id), best first.

    A candidate whose content hash equals a better one's is skipped (e.g. an expert that
    is already sparser than a variant's target sparsity yields the same checkpoint twice).
    """
    _check_size(size)
    out: list[Member] = []
    seen: set[str] = set()
    for m in sorted(candidates, key=_best_key):
        if m.content_hash in seen:
            continue
        seen.add(m.content_hash)
        out.append(m)
        if len(out) == size:
            break
    return out


def _order_key(seed: int, m: Member, i: int):
    return (hashlib.sha256(f"{int(seed)}\x00{m.id}".encode()).hexdigest(), i)


def random_pairs(members: Sequence[Member], seed: int) -> list[tuple[Member, Member]]:
    """Seeded random pairs ``(p[2i], p[2i+1])`` of a permutation ``p`` of ``members``.

    The permutation sorts members by ``sha256(seed, id)``: it depends only on the seed and
    the ids (not on the input order or the Python version). With an odd count the last
    member of ``p`` sits out.

    Identical parents (same content hash) are not paired when another pairing exists.
    Repair, deterministic: scanning pairs in order, a pair ``(x, y)`` with equal hashes
    swaps ``y`` with the first slot ``j`` of ``p`` (in permutation order, the sitting-out
    slot included) whose member differs from ``x`` and whose partner also differs from
    ``x``. Each swap removes an identical pair without creating one, and when no such slot
    exists no valid pairing with ``x``'s hash separated exists at all, so identical pairs
    remain only when unavoidable.
    """
    p = [m for _, m in sorted(((_order_key(seed, m, i), m) for i, m in enumerate(members)), key=lambda t: t[0])]
    n_pairs = len(p) // 2

    def partner(j: int) -> int | None:
        if j >= 2 * n_pairs:
            return None  # the one sitting out
        return j ^ 1

    for i in range(n_pairs):
        x = p[2 * i].content_hash
        if p[2 * i + 1].content_hash != x:
            continue
        for j in range(len(p)):
            if j in (2 * i, 2 * i + 1) or p[j].content_hash == x:
                continue
            q = partner(j)
            if q is not None and p[q].content_hash == x:
                continue
            p[2 * i + 1], p[j] = p[j], p[2 * i + 1]
            break
    return [(p[2 * i], p[2 * i + 1]) for i in range(n_pairs)]


def find_duplicate(archive: Sequence[Member], content_hash: str) -> Member | None:
    """The archive member with this content hash, if any (its offspring need no evaluation)."""
    return next((m for m in archive if m.content_hash == content_hash), None)


def _normalise(item) -> tuple[Member, tuple[str, ...]]:
    if isinstance(item, Member):
        return item, tuple(item.parents)
    member, parents = item
    return member, tuple(parents)


def _compete(
    o: Member, parents: tuple[str, ...], arch: list[Member], competition: str
) -> tuple[tuple[str, Member] | None, list[str]]:
    """The member ``o`` replaces, as ``(rule, member)``, or None with the reasons why not."""
    reasons: list[str] = []
    if competition in ("local", "local_then_global"):
        in_arch = [m for m in arch if m.id in parents]
        if not in_arch:
            reasons.append("local: no parent in the archive")
        else:
            worse = min(in_arch, key=_worst_key)
            if o.fitness > worse.fitness:
                return ("local", worse), reasons
            reasons.append(f"local: fitness {o.fitness:.6g} not above worse parent {worse.id} ({worse.fitness:.6g})")
    if competition in ("global", "local_then_global"):
        worst = min(arch, key=_worst_key)
        if o.fitness > worst.fitness:
            return ("global", worst), reasons
        reasons.append(f"global: fitness {o.fitness:.6g} not above worst member {worst.id} ({worst.fitness:.6g})")
    return None, reasons


def update_archive(
    archive: Sequence[Member],
    offspring: Sequence[Member | tuple[Member, Sequence[str]]],
    size: int = 8,
    competition: str = "local_then_global",
) -> tuple[list[Member], list[ArchiveEvent]]:
    """Insert evaluated offspring into the archive (SAE-SPEC §4).

    Per offspring, in order:

    1. same content hash as a current member: rejected (``duplicate``);
    2. archive below ``size``: added without competing (``below_size``);
    3. ``local``: replaces its worse parent still in the archive if its fitness is
       strictly higher (no parent left in the archive: local fails);
    4. ``global``: replaces the archive's worst member if its fitness is strictly higher;
    5. ``local_then_global``: 3, and if it fails, 4;
    6. otherwise rejected, with the reasons.

    A replacement takes the replaced member's position in the list.

    Args:
        archive: current members (not modified).
        offspring: evaluated offspring, each a Member (parents from ``.parents``) or a
            ``(Member, parent_ids)`` tuple.
        size: the archive size.
        competition: ``local``, ``global`` or ``local_then_global``.

    Returns:
        The new archive and one event per offspring.
    """
    _check_size(size)
    if competition not in COMPETITIONS:
        raise unknown_name("competition", competition, COMPETITIONS)
    arch = list(archive)
    events: list[ArchiveEvent] = []
    for item in offspring:
        o, parents = _normalise(item)
        dup = find_duplicate(arch, o.content_hash)
        if dup is not None:
            events.append(ArchiveEvent(o.id, "rejected", "duplicate", None, f"same content as {dup.id}"))
            continue
        if len(arch) < size:
            arch.append(o)
            events.append(ArchiveEvent(o.id, "added", "below_size", None, f"archive has {len(arch) - 1} < {size}"))
            continue
        target, reasons = _compete(o, parents, arch, competition)
        if target is None:
            events.append(ArchiveEvent(o.id, "rejected", competition, None, "; ".join(reasons)))
            continue
        rule, victim = target
        arch[next(i for i, m in enumerate(arch) if m is victim)] = o
        events.append(
            ArchiveEvent(
                o.id,
                "replaced",
                rule,
                victim.id,
                f"{rule}: fitness {o.fitness:.6g} > {victim.id} ({victim.fitness:.6g})",
            )
        )
    return arch, events
