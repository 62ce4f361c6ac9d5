"""IK: the analytic two-bone leg IK and MMD-style CCD reach reachable targets and keep the knee a hinge."""

import math

import numpy as np
import pytest

from conrdata.poses.ik import PoseState, hinge_angle_for_distance, solve_ccd, solve_two_bone
from conrdata.rig.model import IKChain
from conrdata.rig.rotations import matrix_to_euler

# hips (root) -> thigh -> knee -> ankle; and an IK bone under the root. Knee set slightly forward.
PARENTS = [-1, 0, 1, 2, 0]
HEADS = np.array([[0.0, 0.9, 0], [0.1, 0.8, 0], [0.1, 0.42, 0.01], [0.1, 0.05, 0], [0.1, 0.05, 0]])
KNEE_LIMITS = np.array([[[math.radians(0.5), 0, 0], [math.pi, 0, 0]], [[np.nan] * 3, [np.nan] * 3]])


def fresh() -> PoseState:
    return PoseState(PARENTS, HEADS, np.tile(np.eye(3), (5, 1, 1)))


def reachable_targets(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hip = HEADS[1]
    thigh, shin = np.linalg.norm(HEADS[2] - HEADS[1]), np.linalg.norm(HEADS[3] - HEADS[2])
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = rng.uniform(abs(thigh - shin) + 0.05, thigh + shin - 0.01, size=n)
    return hip + d * r[:, None]


def knee_is_hinge(state: PoseState) -> float:
    """Checks the knee's local rotation is about X only; returns its angle (radians)."""
    r = state.local_r[2]
    np.testing.assert_allclose(r[0], [1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(r[:, 0], [1, 0, 0], atol=1e-9)
    return math.atan2(r[2, 1], r[1, 1])


@pytest.mark.parametrize("target", list(reachable_targets(25)))
def test_two_bone_reaches_within_a_millimetre(target):
    st = fresh()
    err = solve_two_bone(st, 1, 2, 3, target)
    assert err < 1e-3
    np.testing.assert_allclose(st.world_p[3], target, atol=1e-3)
    angle = knee_is_hinge(st)
    assert 0.0 <= angle <= math.pi
    # Bone lengths are kept.
    np.testing.assert_allclose(np.linalg.norm(st.world_p[2] - st.world_p[1]),
                               np.linalg.norm(HEADS[2] - HEADS[1]), atol=1e-9)


def test_two_bone_knee_bends_backwards_for_a_target_below_the_hip():
    st = fresh()
    target = HEADS[1] + np.array([0, -0.55, 0])  # straight below, closer than the leg is long
    solve_two_bone(st, 1, 2, 3, target)
    assert knee_is_hinge(st) > 0.5
    # the knee comes forward (+Z) of the hip-ankle line, as a human knee does
    assert st.world_p[2, 2] > 0.1


def test_unreachable_target_straightens_towards_it():
    st = fresh()
    target = HEADS[1] + np.array([0, -2.0, 0.5])
    err = solve_two_bone(st, 1, 2, 3, target)
    d = (target - HEADS[1]) / np.linalg.norm(target - HEADS[1])
    toward = (st.world_p[3] - HEADS[1]) / np.linalg.norm(st.world_p[3] - HEADS[1])
    assert err > 1.0 and np.dot(d, toward) > 0.999


def test_hinge_angle_for_distance_hand_computed():
    # Straight 1 m + 1 m leg about the X axis: to put the end sqrt(2) m from the hip needs a right angle.
    ang = hinge_angle_for_distance(np.zeros(3), np.array([0, -1.0, 0]), np.array([0, -2.0, 0]),
                                   np.array([1.0, 0, 0]), math.sqrt(2), 0.0, 0.0, math.pi)
    assert ang == pytest.approx(math.pi / 2)


@pytest.mark.parametrize("target", list(reachable_targets(15, seed=1)))
def test_ccd_with_knee_limits(target):
    st = fresh()
    chain = IKChain(ik_bone=4, target_bone=3, links=np.array([2, 1]), iterations=40, max_angle=2.0,
                    limits=KNEE_LIMITS)
    err = solve_ccd(st, chain, target)
    assert err < 1e-3
    angle = knee_is_hinge(st)
    assert math.radians(0.5) - 1e-9 <= angle <= math.pi + 1e-9


def test_ccd_respects_euler_limits_on_a_free_link():
    # Limit the thigh to +-10 degrees about every axis: a far-forward target cannot be reached.
    lim = KNEE_LIMITS.copy()
    lim[1] = np.radians([[-10, -10, -10], [10, 10, 10]])
    st = fresh()
    chain = IKChain(4, 3, np.array([2, 1]), 40, 2.0, lim)
    solve_ccd(st, chain, HEADS[1] + np.array([0, -0.2, 0.6]))
    r = st.local_r[1]
    assert np.all(np.abs(np.degrees(matrix_to_euler(r))) <= 10 + 1e-6)
