"""napari plugin for svimg (npe2 manifest ``napari.yaml``), installed with ``pip install svimg[napari]``.

Contributions: a reader (svimg zarr stores, TIFF stacks, mp4, gif), a zarr
writer, sample data, and the Degrade / Restore / Compare widgets.  Importing
this package imports neither napari nor Qt; napari loads the modules it needs.
"""
