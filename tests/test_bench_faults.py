"""The fault benchmark's own machinery, on a few of its quick rows: each row really runs its fault and
reports what it saw, and a row that fails says so instead of passing quietly."""
from __future__ import annotations

from aurora_tui.bench import faults


def test_the_fault_table_has_twenty_rows_and_every_row_names_its_fault():
    names = [name for name, _, _, _ in faults.FAULTS]
    assert len(names) >= 20 and len(set(names)) == len(names)
    assert all(how for _, how, _, _ in faults.FAULTS)


def test_quick_rows_run_for_real_and_report_supervision_loss_and_leftovers():
    result = faults.run(only="garbage on the socket")
    result["rows"] += faults.run(only="unbounded interval")["rows"]
    rows = {r["fault"]: r for r in result["rows"]}
    garbage = rows["garbage on the socket"]
    assert garbage["supervising"] is True and garbage["healed"] is True, garbage
    assert garbage["lost"] == [] and garbage["left"] == []
    assert rows["unbounded interval"]["healed"] is True, rows["unbounded interval"]
    table = faults.report(result["rows"])
    assert "| garbage on the socket | yes | yes | none | none |" in table


def test_a_row_that_breaks_is_reported_as_not_healed():
    def broken(work):
        raise RuntimeError("the fault could not be caused")

    faults.FAULTS.append(("broken on purpose", "raises", None, broken))
    try:
        row = faults.run(only="broken on purpose")["rows"][0]
    finally:
        faults.FAULTS.pop()
    assert row["healed"] is False and "could not be caused" in row["note"]
