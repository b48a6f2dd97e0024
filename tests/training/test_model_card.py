"""Issue #34 item 8: the card of a bundle fits the data it was trained on, read from its manifest."""

import dataclasses
import shutil
from pathlib import Path

from runtime import bundle
from training import model_card

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "imdb-lstm"
LABELS = ("bug", "feature", "question")


def own_data_manifest() -> bundle.Manifest:
    """The shipped manifest as if trained on a 3-label CSV of one's own."""
    manifest = bundle.Manifest.read(SHIPPED)
    data = dataclasses.replace(
        manifest.training.data, source="tickets.csv", format="csv", labels=LABELS, test_split=0.2, sha256="ab" * 32
    )
    config = dataclasses.replace(manifest.model_config, labels=LABELS)
    training = dataclasses.replace(manifest.training, data=data)
    return dataclasses.replace(manifest, name="tickets-lstm", model_config=config, training=training)


def test_an_own_data_card_names_its_data_and_labels_and_not_imdb():
    card = model_card.render(own_data_manifest())
    assert "tickets.csv" in card and "three labels: bug, feature, question" in card
    assert "imdb" not in card.lower() and "datasets:" not in card


def test_the_imdb_card_says_imdb():
    assert "IMDB" in model_card.render(bundle.Manifest.read(SHIPPED))


def test_write_card_writes_the_card_and_records_it_in_the_manifest(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    shutil.copy(SHIPPED / "manifest.json", folder / "manifest.json")
    manifest = model_card.write_card(folder, own_data_manifest())
    assert "tickets.csv" in (folder / model_card.CARD_NAME).read_text()
    assert model_card.CARD_NAME in [record.file for record in manifest.reports]
    assert bundle.Manifest.read(folder).reports == manifest.reports
