"""The DICOM series writer used by the phantom generator and the exports."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numpy as np
import SimpleITK as sitk

from sarcoma_risk.radiology.dicom import write_series

def _write(folder):
    import numpy as np
    import SimpleITK as sitk

    from sarcoma_risk.radiology.dicom import write_series

    image = sitk.GetImageFromArray(np.arange(3 * 5 * 6, dtype=np.int16).reshape(3, 5, 6))
    image.SetSpacing((0.7, 0.8, 4.5))
    write_series(image, folder, study_uid="2.25.1", series_uid="2.25.2", frame_uid="2.25.3",
                 series_description="T2 FS AX", series_number=1,
                 study_date="20250101", study_time="120000")


def _digest(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _header(path):
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return {key: reader.GetMetaData(key).strip() for key in reader.GetMetaDataKeys()}


def test_the_bytes_do_not_depend_on_what_the_process_read_before(tmp_path):
    # A fresh interpreter has never read a DICOM header; this one has (other tests, and the header
    # read below), which switches GDCM's process-wide rescale behaviour.
    script = f"{inspect.getsource(_write)}\nfrom pathlib import Path\n_write(Path({str(tmp_path / 'fresh')!r}))"
    subprocess.run([sys.executable, "-c", script], check=True)
    _header(next((tmp_path / "fresh").iterdir()))
    _write(tmp_path / "here")
    assert _digest(tmp_path / "fresh") == _digest(tmp_path / "here")


def test_slices_carry_their_spacing_position_and_rescale(tmp_path):
    image = sitk.GetImageFromArray(np.arange(3 * 5 * 6, dtype=np.int16).reshape(3, 5, 6))
    image.SetSpacing((0.7, 0.8, 4.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    paths = write_series(image, tmp_path / "series", study_uid="2.25.1", series_uid="2.25.2", frame_uid="2.25.3",
                         series_description="T2 FS AX", series_number=1, study_date="20250101", study_time="120000")
    headers = [_header(path) for path in paths]
    assert [h["0018|0088"] for h in headers] == ["4.5"] * 3  # SpacingBetweenSlices, not ITK's 2D default of 1
    assert [h["0018|0050"] for h in headers] == ["4.5"] * 3
    assert [float(h["0020|0032"].split("\\")[2]) for h in headers] == [30.0, 34.5, 39.0]
    assert all((h["0028|1052"], h["0028|1053"]) == ("0", "1") for h in headers)
    assert len({h["0008|0018"] for h in headers}) == 3
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path) for path in paths])
    back = reader.Execute()
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert np.allclose(back.GetSpacing(), (0.7, 0.8, 4.5))


def test_writing_a_series_leaves_the_process_locale_and_text_encoding_as_they_were(tmp_path):
    # In a child started in a UTF-8 locale: ITK's GDCM writer switches the whole process to "C", after
    # which Python decodes text (open(), subprocess output) as ASCII.
    script = (f"{inspect.getsource(_write)}\nimport locale\nfrom pathlib import Path\n"
              "before = locale.setlocale(locale.LC_ALL), locale.getpreferredencoding(False)\n"
              f"_write(Path({str(tmp_path / 'series')!r}))\n"
              "print(before == (locale.setlocale(locale.LC_ALL), locale.getpreferredencoding(False)), before[1])")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert run.stdout.split() == ["True", "UTF-8"]
