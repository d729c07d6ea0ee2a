"""One definition of a table's columns: the tables read with ``from_row`` have exactly the
fields of their model record, so a column added to one and not the other fails here
(not as a silently dropped value), and a stored record reads back equal."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from gitswarm.model.operation import Baseline
from gitswarm.model.promotion import Hold
from gitswarm.store import Store
from gitswarm.store.schema import baselines, promotion_holds


@pytest.mark.parametrize(("table", "record"), [(promotion_holds, Hold), (baselines, Baseline)])
def test_the_table_and_its_record_have_the_same_columns(table: sa.Table, record: type) -> None:
    assert set(table.c.keys()) == {f.name for f in dataclasses.fields(record)}


def test_a_hold_and_a_baseline_read_back_as_written(tmp_path: Path) -> None:
    with Store(str(tmp_path / "state.db")) as store:
        hold, created = store.create_hold(
            "web", "prod", reason="rolled back", created_by="ops",
            images={"reg/web": "1.2.0"}, operation_id=None, from_revision="b", to_revision="a",
        )  # fmt: skip
        assert created and store.get_hold(hold.id) == hold
        assert (hold.images, hold.from_revision, hold.active) == ({"reg/web": "1.2.0"}, "b", True)
        saved = store.save_baseline(
            "web", "prod", "api", spec={"Name": "api"}, version=7, spec_hash="h",
            revision="abc", rendered={"image": "x"},
        )  # fmt: skip
        assert store.baselines("web", "prod") == {"api": saved}
        assert (saved.version, saved.rendered, saved.revision) == (7, {"image": "x"}, "abc")
        assert saved.updated_at.tzinfo is not None and saved.updated_at <= dt.datetime.now(dt.UTC)
