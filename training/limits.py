"""What training accepts, checked before any work: the one place for these limits.

Data beyond them is refused with a DataError naming the file, rather than exhausting memory or
writing a bundle that export and the runtime refuse. Each limit is far above what a real
dataset needs.
"""

from __future__ import annotations

import json

from runtime.bundle import MAX_MANIFEST_BYTES

# Labels a model may have. The model's output layer and the metrics grow with it; the confusion
# matrix grows with its square (and is written to metrics.json, not the manifest).
MAX_LABELS = 1000
# Characters of one label: a class name, not a text.
MAX_LABEL_CHARACTERS = 100
# The labels as the manifest writes them (JSON, indented). They appear there about 17 times
# (the model config, the data record and its three label counts, and each of the 12 exported
# artifacts' records), which must stay well inside the runtime's manifest limit.
MAX_LABELS_JSON_BYTES = MAX_MANIFEST_BYTES // 32
# Bytes of one text (a file of a folder, an archive member, a CSV field or JSON value). The model
# reads a text's last few hundred words, and the runtime refuses texts over 1,048,576 characters
# (up to 4 bytes each in UTF-8).
MAX_TEXT_BYTES = 4 << 20
# Bytes of one line of a CSV, TSV or JSON lines file (a text JSON-escaped, or a CSV line of a
# quoted field that spans lines, with its other fields).
MAX_LINE_BYTES = 8 * MAX_TEXT_BYTES
# Members of a training archive, of any kind (aclImdb_v1.tar.gz has about 100,000). Each costs a
# header's parsing even when empty; a small .tar.gz can hold millions (1 M empty members: 6 MB).
MAX_ARCHIVE_MEMBERS = 1_000_000
# Columns of a CSV or TSV header (a table needs three: text, label, split). The header is read
# before any limit on rows applies, and a line may be MAX_LINE_BYTES long.
MAX_COLUMNS = 10_000
# Labels beyond which the confusion matrix is not plotted (its cells and names would be too
# small to read); the figures are still in metrics.json.
MAX_PLOTTED_LABELS = 40


def labels_json_bytes(labels) -> int:
    """Bytes the label list takes in the manifest, as bundle.write_json writes it."""
    return len(json.dumps({"labels": list(labels)}, indent=2).encode("utf-8"))
