"""Take the napari screenshots of docs/napari.md.

Default: docs/napari_restore.png, the Restore widget next to a real restoration.
Loads the plugin's "degraded clip" sample (16 frames of the held-out carphone
clip, blurred in time by the uniform PSF of width 7), restores it with the
Restore widget and the bundled prior (the operator is preset from the layer's
metadata), shows degraded | restored | ground truth side by side at one frame
and saves a screenshot of the whole window.

``--docked``: docs/napari_docked.png, the Degrade, Restore and Compare widgets
docked together in a 1280 x 1024 window, Compare run on the sample (degraded
against the ground truth).

Needs a display with OpenGL; headless::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/napari_screenshot.py [--out docs/napari_restore.png]
    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/napari_screenshot.py --docked
"""

from __future__ import annotations

import argparse
import importlib.resources
import time
from pathlib import Path


def _register_plugin():
    """Make sure npe2 knows svimg (an editable meson-python install hides the manifest from discovery)."""
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    if "svimg" not in pm:
        with importlib.resources.as_file(importlib.resources.files("svimg.napari") / "napari.yaml") as path:
            pm.register(npe2.PluginManifest.from_file(path))


def _psnr(layer, truth) -> float:
    """Mean per-frame PSNR (dB) of an image layer against the ground-truth layer."""
    from svimg import metrics
    from svimg.napari._layers import layer_to_video

    return metrics.psnr(layer_to_video(layer.data, rgb=layer.rgb), layer_to_video(truth.data, rgb=truth.rgb))


def _settle(app, rounds: int = 20):
    """Let Qt lay out and draw."""
    for _ in range(rounds):
        app.processEvents()
        time.sleep(0.05)


def docked(out: Path) -> Path:
    """The three widgets docked in a 1280 x 1024 window, Compare run on the sample clip."""
    import napari
    from qtpy.QtWidgets import QApplication

    _register_plugin()
    viewer = napari.Viewer(show=True, title="svimg: Degrade, Restore and Compare docked")
    viewer.window.resize(1280, 1024)
    truth, degraded = viewer.open_sample("svimg", "degraded_clip")
    widgets = [viewer.window.add_plugin_dock_widget("svimg", name)[1] for name in ("Degrade", "Restore", "Compare")]
    widgets[1].image.value = degraded
    widgets[2].run()  # its layer starts on the newest layer (degraded), its reference on the oldest (truth)
    _settle(QApplication.instance())
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"saved {out}")
    viewer.close()
    return out


def main(argv=None) -> Path:
    docs = Path(__file__).resolve().parents[1] / "docs"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="PNG to write (default docs/napari_restore.png, or docs/napari_docked.png with --docked)")
    parser.add_argument("--docked", action="store_true", help="the three widgets docked at 1280 x 1024 instead")
    parser.add_argument("--nfe", type=int, default=20)
    parser.add_argument("--frame", type=int, default=8, help="frame shown in the screenshot")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.docked:
        return docked(args.out or docs / "napari_docked.png")
    args.out = args.out or docs / "napari_restore.png"

    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    torch.set_num_threads(args.threads)
    _register_plugin()
    viewer = napari.Viewer(show=True, title="svimg: restore a temporally blurred clip")
    viewer.window.resize(1560, 780)
    truth, degraded = viewer.open_sample("svimg", "degraded_clip")
    _, restore = viewer.window.add_plugin_dock_widget("svimg", "Restore")
    restore.image.value = degraded  # presets the operator: uniform temporal PSF of width 7, circular
    restore.nfe.value, restore.seed.value, restore.device.value = args.nfe, 0, "cpu"

    start = time.perf_counter()
    restore.run()
    app = QApplication.instance()
    while restore.running:
        app.processEvents()
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    (restored,) = [layer for layer in viewer.layers if "restored" in layer.name]

    # degraded | restored | ground truth, left to right, at one frame.
    for index, layer in enumerate((degraded, restored, truth)):  # the grid shows layer 0 first
        viewer.layers.move(viewer.layers.index(layer), index)
    viewer.grid.enabled = True
    viewer.grid.shape = (1, 3)
    viewer.dims.set_current_step(0, args.frame)
    viewer.text_overlay.visible = True
    viewer.text_overlay.font_size = 7
    viewer.text_overlay.position = "top_center"
    db = {layer.name: _psnr(layer, truth) for layer in (degraded, restored)}
    viewer.text_overlay.text = (
        f"frame {args.frame}:   degraded ({db[degraded.name]:.1f} dB)   |   "
        f"restored ({args.nfe} NFE, {db[restored.name]:.1f} dB)   |   ground truth      (PSNR over the 16 frames)"
    )
    viewer.layers.selection.active = restored
    viewer.reset_view()
    _settle(app)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"restored {restored.data.shape} in {elapsed:.1f} s ({args.nfe} NFE); PSNR {db}; saved {args.out}")
    viewer.close()
    return args.out


if __name__ == "__main__":
    main()
