"""The sample report: what an estimate was computed on, and everything dropped on the way."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Dropped:
    """Rows removed for one reason, and the units left with no row (each such unit counted once, under the last
    reason that removed one of its rows), where units are known."""

    reason: str
    n_rows: int
    n_units: int | None = None

    def describe(self) -> str:
        units = f" ({self.n_units} units removed entirely)" if self.n_units is not None else ""
        return f"{self.n_rows} rows{units}: {self.reason}"


@dataclass(frozen=True)
class SampleReport:
    """Counts that travel into every result and are printed by ``summary()``."""

    n_input_rows: int
    n_obs: int
    n_units: int | None = None
    n_periods: int | None = None
    dropped: tuple[Dropped, ...] = ()
    balanced: bool | None = None
    n_units_with_gaps: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def with_dropped(self, *items: Dropped) -> SampleReport:
        kept = tuple(d for d in items if d.n_rows > 0 or (d.n_units or 0) > 0)
        return replace(self, dropped=self.dropped + kept)

    def with_notes(self, *notes: str) -> SampleReport:
        return replace(self, notes=self.notes + tuple(notes))

    @property
    def n_dropped_rows(self) -> int:
        return sum(d.n_rows for d in self.dropped)

    def lines(self) -> list[str]:
        out = [f"Observations: {self.n_obs} of {self.n_input_rows} input rows"]
        if self.n_units is not None:
            out.append(f"Units: {self.n_units}")
        if self.n_periods is not None:
            out.append(f"Periods: {self.n_periods}")
        if self.balanced is not None:
            bal = "balanced" if self.balanced else "unbalanced"
            if self.n_units_with_gaps:
                bal += f"; {self.n_units_with_gaps} units have gaps between their first and last period"
            out.append(f"Panel: {bal}")
        if self.dropped:
            out.append("Dropped:")
            out.extend("  " + d.describe() for d in self.dropped)
        else:
            out.append("Dropped: nothing")
        out.extend(self.notes)
        return out
