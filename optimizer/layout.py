"""The numeric layout of a dispatch model: column and row families, bounds, costs and the
sparse matrix as numpy arrays.

Every family function of :mod:`optimizer.model` and :mod:`optimizer.ev` declares its columns
(``Layout.var``) and rows (``Layout.constrain``) here; the solver routes read the assembled
arrays (``bounds``, ``cost``, ``row_bounds``, ``csc``, ``integrality``). A *pooled* layout
(:class:`Pool`, the rolling solver's) keeps one column block per EV charger slot, deferrable
slot and step for the whole horizon, so arrivals, departures and windows moving with the
clock change only bounds, costs and right-hand sides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

INF = math.inf


@dataclass(frozen=True)
class Pool:
    """Slots of a pooled layout: the charger of each EV slot; the number of deferrable slots
    for interruptible loads and for one-block loads. Sessions go to their charger's slots in
    arrival order; loads to the slots of their kind in the problem's order."""

    ev_slots: tuple[str, ...] = ()
    deferrable: tuple[int, int] = (0, 0)
    dr: tuple[int, int, int, int] = (0, 0, 0, 0)
    """DR slots per kind (:data:`DR_KINDS`): paid reduction and paid increase at the site
    meter, paid and committed reduction on the participants' meters (committed events at
    the site meter are import bounds and need no slot)."""


DR_KINDS = ("reduce", "increase", "meters_soft", "meters_hard")


def dr_kind(event: object) -> str | None:
    """The pooled slot kind of a DR event (None: a committed site-meter event, a bound)."""
    on_meters = getattr(event, "participants_use_kw", None) is not None
    if on_meters:
        return "meters_hard" if getattr(event, "hard", False) else "meters_soft"
    if getattr(event, "hard", False):
        return None
    return "increase" if getattr(event, "increase", False) else "reduce"


@dataclass
class EvMap:
    """Where the EV columns are, one entry per (session or slot, step) pair.

    ``ch``/``dis``: the column inside ``ev_charge_kw`` / ``ev_discharge_kw`` (-1: no
    discharge column); ``sid``: the session (index in ``problem.ev_sessions``; -1 where no
    session is plugged in: an empty pooled slot or a step outside the stay); ``step``: the
    horizon step; ``charger``: index in ``problem.chargers``; ``owner``: the group gated
    together against simultaneous charge/discharge (session or slot); ``ch_max``/``dis_max``:
    the charger's limits. ``end``: per session, the absolute column of its energy at departure.
    """

    ch: np.ndarray
    dis: np.ndarray
    sid: np.ndarray
    step: np.ndarray
    charger: np.ndarray
    owner: np.ndarray
    ch_max: np.ndarray
    dis_max: np.ndarray
    end: np.ndarray


@dataclass
class VarFamily:
    """A block of columns ``[start, start + n)`` named ``name``."""

    name: str
    start: int
    n: int
    integer: bool | np.ndarray = False
    """True: every column integral; an array: a per-column mask (pooled families whose
    binaries are active only at some steps)."""

    @property
    def cols(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.n)


@dataclass
class RowFamily:
    """A block of rows ``[start, start + n)`` named ``name``."""

    name: str
    start: int
    n: int


@dataclass
class Layout:
    """Columns, rows and the sparse matrix of one problem, in numpy arrays.

    With ``structure=False`` only bounds and costs are kept (the MPC update path).
    """

    structure: bool = True
    vars: dict[str, VarFamily] = field(default_factory=dict)
    rows: dict[str, RowFamily] = field(default_factory=dict)
    n_cols: int = 0
    n_rows: int = 0
    _lb: list[np.ndarray] = field(default_factory=list)
    _ub: list[np.ndarray] = field(default_factory=list)
    _cost: list[np.ndarray] = field(default_factory=list)
    _row_lo: list[np.ndarray] = field(default_factory=list)
    _row_hi: list[np.ndarray] = field(default_factory=list)
    _r: list[np.ndarray] = field(default_factory=list)
    _c: list[np.ndarray] = field(default_factory=list)
    _v: list[np.ndarray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ev_map: EvMap | None = None
    """Where each EV (session or slot, step) pair's columns are (see :class:`EvMap`)."""
    deferrable: list[tuple[str, int]] = field(default_factory=list)
    """Per deferrable load (problem order): its family's name stem and first step."""
    dr: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Per paid DR event id: its families' name stem and first step."""
    pool: Pool | None = None
    """The pooled layout's slots (rolling re-plans), or None for the compact layout."""
    step_h: float = 1.0
    """Hours per step of the problem the layout was built for."""
    gated: np.ndarray | None = None
    """Per step: a binary keeps import and export apart."""

    def var(self, name: str, n: int, lb: object = 0.0, ub: object = INF, cost: object = 0.0,
            integer: bool | np.ndarray = False) -> VarFamily:
        """Declare ``n`` columns with bounds and per-column cost (scalars broadcast)."""
        fam = VarFamily(name, self.n_cols, n, integer)
        self.vars[name] = fam
        self.n_cols += n
        self._lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (n,)))
        self._ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (n,)))
        self._cost.append(np.broadcast_to(np.asarray(cost, dtype=float), (n,)))
        return fam

    def constrain(self, name: str, n: int,
                  terms: list[tuple[np.ndarray, VarFamily, np.ndarray, object]],
                  lo: object, hi: object) -> RowFamily:
        """Declare ``n`` rows ``lo <= sum(coef * x) <= hi``, one-sided or equality.

        ``terms`` holds blocks ``(row, var_family, var_index, coef)`` of equal-length arrays
        (``coef`` may be a scalar); ``row`` counts from 0 inside this family.
        """
        fam = RowFamily(name, self.n_rows, n)
        self.rows[name] = fam
        self.n_rows += n
        lo_a = np.broadcast_to(np.asarray(lo, dtype=float), (n,))
        hi_a = np.broadcast_to(np.asarray(hi, dtype=float), (n,))
        self._row_lo.append(lo_a)
        self._row_hi.append(hi_a)
        if self.structure:
            for row, vf, idx, coef in terms:
                row = np.asarray(row, dtype=np.int64)
                self._r.append(row + fam.start)
                self._c.append(np.asarray(idx, dtype=np.int64) + vf.start)
                self._v.append(np.broadcast_to(np.asarray(coef, dtype=float), row.shape))
        return fam

    def column_bounds(self, fam: VarFamily) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of one declared family."""
        i = list(self.vars.values()).index(fam)
        return self._lb[i], self._ub[i]

    # ------------------------------------------------------------------ assembled arrays
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return _cat(self._lb), _cat(self._ub)

    def cost(self) -> np.ndarray:
        return _cat(self._cost)

    def row_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return _cat(self._row_lo), _cat(self._row_hi)

    def integrality(self) -> np.ndarray:
        out = np.zeros(self.n_cols, dtype=np.int32)
        for f in self.vars.values():
            if isinstance(f.integer, np.ndarray):
                out[f.start:f.start + f.n] = f.integer
            elif f.integer:
                out[f.start:f.start + f.n] = 1
        return out

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and values of the constraint matrix (duplicates summed later)."""
        return _cat(self._r, np.int64), _cat(self._c, np.int64), _cat(self._v)

    def csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column-wise (start, index, value) arrays of the matrix, duplicates summed."""
        r, c, v = self.coo()
        order = np.lexsort((r, c))
        r, c, v = r[order], c[order], v[order]
        if r.size:
            new = np.ones(r.size, dtype=bool)
            new[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
            grp = np.cumsum(new) - 1
            v = np.bincount(grp, weights=v)
            r, c = r[new], c[new]
            keep = v != 0.0
            r, c, v = r[keep], c[keep], v[keep]
        start = np.zeros(self.n_cols + 1, dtype=np.int32)
        np.cumsum(np.bincount(c, minlength=self.n_cols), out=start[1:])
        return start, r.astype(np.int32), v


def _cat(parts: list[np.ndarray], dtype: type = float) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


# --------------------------------------------------------------------------- families


@dataclass
class Balance:
    """Terms of the per-step power balance: sources positive, sinks negative."""

    terms: list[tuple[np.ndarray, VarFamily, np.ndarray, object]] = field(default_factory=list)

    def add(self, fam: VarFamily, steps: np.ndarray, sign: float,
            idx: np.ndarray | None = None) -> None:
        self.terms.append((steps, fam, np.arange(fam.n) if idx is None else idx, sign))
