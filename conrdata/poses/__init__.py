"""Poses: the pose model and library file, motion readers (VMD, BVH, glTF), IK, retargeting, the sampler.

Public API (see each module for details)::

    PoseLibrary, save_pose_library, load_pose_library   # conrdata.poses.library
    pose_for_rig, poses_for_rig                          # apply a library to any canonical rig
    sample_poses                                         # seeded joint-limited random poses
    standard_skeleton                                    # joints-only reference A-pose humanoid

Convention: local rotations (x, y, z, w) in world-aligned bone axes relative
to the canonical A-pose bind, humanoid bones relative to their parent in the
standard humanoid tree; root translation in metres.
"""

from conrdata.poses.library import (
    FORMAT_VERSION,
    PoseLibrary,
    load_pose_library,
    pose_for_rig,
    poses_for_rig,
    save_pose_library,
)
from conrdata.poses.sampler import sample_poses
from conrdata.poses.skeleton import standard_skeleton

__all__ = [
    "FORMAT_VERSION",
    "PoseLibrary",
    "load_pose_library",
    "save_pose_library",
    "pose_for_rig",
    "poses_for_rig",
    "sample_poses",
    "standard_skeleton",
]
