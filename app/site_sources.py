"""The Validate page's three ways to give a site's labelled films: a folder on this server, a zip, or a folder chosen
on the user's computer (the browser uploads its files). The last two are written into a temporary folder, which the
validation removes when it ends."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

import ui
from covid_core.archive import MAX_BYTES, MAX_FILES, extract_labelled_zip, write_labelled_files
from covid_core.data_roots import check_data_folder
from covid_core.errors import ConfigError

SKIPPED_SHOWN = 10  # the files skipped, named one by one; the rest counted
LIMITS = f"at most {MAX_FILES:,} files and {MAX_BYTES // 2**30} GB of films"


def chosen_films(folder: str, zipped, picked) -> tuple[Path, str, str | None]:
    """(the folder to validate, a name for the site, the temporary folder to remove when the validation ends or
    None) for what the form was given; shows what was skipped. CovidCoreError (nothing left behind) when it was given
    no films, more than one set, or a set that cannot be used."""
    given = [what for what, value in (("a folder on this server", folder.strip()), ("a zip", zipped),
                                      ("a folder from your computer", picked)) if value]
    if len(given) != 1:
        raise ConfigError("give your labelled films one way: " + (f"you gave {' and '.join(given)}; clear all but one"
                          if given else "a folder on this server, a zip, or a folder from your computer"))
    if not zipped and not picked:
        path = check_data_folder(folder)
        return path, path.name, None
    unpacked = tempfile.mkdtemp(prefix="site_")
    try:
        if zipped:
            path, skipped = extract_labelled_zip(zipped.getvalue(), unpacked)
            label = Path(zipped.name).stem
        else:
            path, skipped = write_labelled_files(((f.name, f.getvalue()) for f in picked), unpacked)
            label = path.name if path != Path(unpacked) else ""
    except BaseException:
        shutil.rmtree(unpacked, ignore_errors=True)
        raise
    for line in skipped[:SKIPPED_SHOWN]:
        st.warning(ui.plain(line), icon=":material/folder_off:")
    if len(skipped) > SKIPPED_SHOWN:
        st.warning(f"... and {len(skipped) - SKIPPED_SHOWN:,} more files skipped (damaged, encrypted, links or "
                   "outside the folder)", icon=":material/folder_off:")
    return path, label, unpacked
