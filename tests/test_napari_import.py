"""`import svimg` (and using its core) must never pull in napari or a Qt binding."""

import subprocess
import sys
import textwrap


def test_import_svimg_loads_no_gui_toolkit():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import svimg, svimg.ops, svimg.napari
        y = svimg.forward_op(np.zeros((4, 8, 8), np.float32), svimg.ops.TemporalPSF(3, boundary="circular"))
        assert y.shape == (4, 8, 8)
        from svimg.napari import _layers, _operator, _reader, _writer, _sample_data  # Qt-free plugin parts
        toolkits = ("napari", "PyQt5", "PyQt6", "PySide2", "PySide6", "qtpy", "magicgui", "vispy")
        gui = sorted(m for m in sys.modules if m.split(".")[0] in toolkits)
        print("GUI:", gui)
        assert not gui, gui
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "GUI: []" in proc.stdout
