"""Matting of hand-drawn character images (watershed on simple backgrounds) and their packing as data.

``matte_array(rgb, hint, options) -> MatteResult`` is the algorithm on arrays;
:mod:`conrdata.matte.batch` runs it over a folder; :mod:`conrdata.matte.pack`
groups matted images into characters and writes dataset clips.
"""

from conrdata.matte.background import BackgroundModel, fit_background, parse_color
from conrdata.matte.watershed import HOLE_MODES, MatteOptions, MatteResult, matte_array

__all__ = [
    "BackgroundModel",
    "HOLE_MODES",
    "MatteOptions",
    "MatteResult",
    "fit_background",
    "matte_array",
    "parse_color",
]
