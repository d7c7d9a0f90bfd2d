"""Sample data: still images for training and short video clips for demos and evaluation.

``stills()`` (scikit-image photographs) and ``clip("bigbuckbunny")`` are the bundled
prior's training data; ``clip("carphone")`` and ``clip("bikes")`` are never trained on.
"""

from .cells import cells
from .recorded import record
from .stills import STILL_NAMES, stills
from .videos import CLIPS, clip, clip_path, square_resize

__all__ = ["cells", "record", "stills", "STILL_NAMES", "clip", "clip_path", "CLIPS", "square_resize"]
