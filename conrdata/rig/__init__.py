"""Rigs: the skinned-character model and everything that reasons about its bones.

Modules: ``model`` (:class:`Rig`, forward kinematics, linear-blend skinning), ``rotations`` (all rotation
maths; quaternions are (x, y, z, w)), ``mesh`` (vertex normals, skin-weight clean-up), ``humanoid`` (the
standard humanoid bone set), ``bonemaps`` (MMD / Mixamo / CMU bone-name maps), ``humanoid_infer`` (which
bone of an unknown skeleton is which humanoid bone), ``apose`` (alignment to the canonical A-pose),
``io`` (the character ``.npz`` file) and ``procedural`` (generated rigged characters).

The names of ``model``, ``humanoid`` and ``mesh`` are imported here; those of ``apose``, ``io``,
``humanoid_infer`` and ``procedural`` on first use (they import :mod:`conrdata.formats` and
:mod:`conrdata.poses`, which themselves import :mod:`conrdata.rig.rotations`: importing them here would
make every reader of the rotation module load the whole format stack, and turn that into a start-up cycle).
"""

from __future__ import annotations

import importlib

from conrdata.rig.humanoid import HUMANOID_BONES, REQUIRED_BONES
from conrdata.rig.mesh import normalize_skin_weights, vertex_normals
from conrdata.rig.model import (
    IKChain,
    Material,
    Rig,
    forward_kinematics,
    identity_rotations,
    pose_vertices,
    skin,
    skin_normals,
    skinning_matrices,
)

#: public name -> submodule that defines it, imported on first access (see the module docstring).
_LAZY = {
    "align_to_apose": "apose",
    "measure_apose": "apose",
    "load_character": "io",
    "save_character": "io",
    "bone_map_for": "humanoid_infer",
    "resolve_humanoid": "humanoid_infer",
    "build_character": "procedural",
    "write_character_glb": "procedural",
}

__all__ = [
    "HUMANOID_BONES",
    "REQUIRED_BONES",
    "IKChain",
    "Material",
    "Rig",
    "forward_kinematics",
    "identity_rotations",
    "normalize_skin_weights",
    "pose_vertices",
    "skin",
    "skin_normals",
    "skinning_matrices",
    "vertex_normals",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
