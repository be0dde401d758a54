"""A walking body, filmed: the synthetic walker behind every twin dataset.

The model is a 3D articulated body (head, neck, chest, abdomen, pelvis, upper
and lower arms, hands, thighs, shins and feet as solids) walking with a
periodic gait, seen by a perspective camera at the view angle and rasterised as
a binary silhouette. Solids are chosen so that their projections are exact and
cheap: a sphere-swept segment (a limb) projects to the convex hull of two discs,
an ellipsoid (head, torso) to an ellipse.

Identity lives in the body's proportions (limb lengths and widths, shoulders,
hips, torso depth, head) and in its walk (cadence, stride, knee lift, arm swing,
elbow bend, posture, sway, left-right asymmetry). The person's absolute size,
distance and position in the frame are drawn per sequence, as in real footage,
so they carry no identity.

Covariates follow CASIA-B: ``nm`` normal walking; ``bg`` a bag (backpack,
shoulder bag or handbag, which also damps the carrying arm's swing); ``cl`` a
coat that widens the torso and arms and hides the thighs under its skirt, which
makes ``cl`` the hardest condition. Segmentation noise (holes, ragged edges,
spurious blobs, the odd missing or truncated frame) is added at a rate.

Everything is drawn from a generator seeded by (seed, subject) for the body and
(seed, subject, condition, sequence, view) for a sequence, so the output is
byte-identical for the same seed and params whatever the number of workers.

The twins themselves (which sequences, in which release's files) are
:mod:`gaitflow.data.synth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FPS = 25.0
SHIFT = 4  # sub-pixel bits for OpenCV's rasteriser
ONE = 1 << SHIFT
CONDITION_CODES = {"nm": 0, "bg": 1, "cl": 2}
BAGS = ("backpack", "shoulder", "hand")


def seeded(*parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(p) for p in parts]))


@dataclass(frozen=True)
class Body:
    """One identity: proportions (in units of stature) and walking style (radians, seconds)."""

    hip_height: float
    thigh_fraction: float
    shoulder_height: float
    head_radius: float
    shoulder_half: float
    hip_half: float
    waist_half: float
    chest_depth: float
    belly_depth: float
    thigh_radius: float
    knee_radius: float
    ankle_radius: float
    upper_arm_radius: float
    forearm_radius: float
    upper_arm: float
    forearm: float
    foot: float
    cycle: float
    hip_swing: float
    hip_offset: float
    knee_swing: float
    knee_stance: float
    arm_swing: float
    arm_offset: float
    elbow_bend: float
    elbow_swing: float
    arm_abduction: float
    lean: float
    head_forward: float
    sway: float
    twist: float
    asymmetry: float
    bag: str
    coat_length: float
    coat_width: float


def sample_body(rng: np.random.Generator) -> Body:
    """Draw an identity. Spreads are those of adult walkers, a little exaggerated."""

    def n(mean, sd, lo=None, hi=None):
        x = rng.normal(mean, sd)
        return float(np.clip(x, lo if lo is not None else -np.inf, hi if hi is not None else np.inf))

    deg = np.pi / 180
    thigh_radius = n(0.052, 0.008, 0.035, 0.075)
    forearm_radius = n(0.025, 0.004, 0.017, 0.036)
    return Body(
        hip_height=n(0.49, 0.022, 0.43, 0.55),
        thigh_fraction=n(0.5, 0.025, 0.44, 0.56),
        shoulder_height=n(0.815, 0.012, 0.78, 0.85),
        head_radius=n(0.062, 0.005, 0.05, 0.075),
        shoulder_half=n(0.118, 0.012, 0.09, 0.15),
        hip_half=n(0.082, 0.009, 0.06, 0.105),
        waist_half=n(0.098, 0.014, 0.07, 0.14),
        chest_depth=n(0.07, 0.011, 0.05, 0.1),
        belly_depth=n(0.066, 0.016, 0.045, 0.115),
        thigh_radius=thigh_radius,
        knee_radius=thigh_radius * n(0.68, 0.05, 0.55, 0.8),
        ankle_radius=n(0.024, 0.003, 0.017, 0.032),
        upper_arm_radius=n(0.032, 0.005, 0.022, 0.045),
        forearm_radius=forearm_radius,
        upper_arm=n(0.175, 0.01, 0.15, 0.2),
        forearm=n(0.155, 0.01, 0.13, 0.18),
        foot=n(0.145, 0.008, 0.125, 0.165),
        cycle=n(1.08, 0.09, 0.88, 1.3),
        hip_swing=n(22, 3.5, 14, 31) * deg,
        hip_offset=n(3, 2.5, -3, 9) * deg,
        knee_swing=n(44, 6, 30, 58) * deg,
        knee_stance=n(8, 3, 2, 16) * deg,
        arm_swing=n(20, 8, 4, 40) * deg,
        arm_offset=n(-3, 3, -10, 5) * deg,
        elbow_bend=n(14, 7, 2, 35) * deg,
        elbow_swing=n(15, 7, 0, 35) * deg,
        arm_abduction=n(7, 2.5, 2, 14) * deg,
        lean=n(4, 3.5, -4, 14) * deg,
        head_forward=n(0.012, 0.01, -0.01, 0.04),
        sway=n(0.012, 0.005, 0.0, 0.03),
        twist=n(5, 2, 0, 10) * deg,
        asymmetry=n(0.0, 0.07, -0.2, 0.2),
        bag=BAGS[int(rng.integers(len(BAGS)))],
        coat_length=n(0.55, 0.12, 0.3, 0.85),
        coat_width=n(1.28, 0.07, 1.12, 1.45),
    )


@dataclass(frozen=True)
class Shot:
    """How one sequence is filmed and walked: the per-sequence variation."""

    frames: int
    view: float  # radians
    phase: float
    cadence: float  # multiplies the identity's cadence
    stride: float  # multiplies the swings
    stature_px: float
    camera_height: float
    depth: float
    along: float  # offset of the walk's middle along its direction
    x_frac: float
    ground_frac: float
    bag: str | None
    coat: bool


def sample_shot(rng: np.random.Generator, body: Body, condition: str, frames: int, view_deg: int) -> Shot:
    spread = max(1, frames // 6)
    shot = dict(
        frames=max(1, frames + int(rng.integers(-spread, spread + 1))) if frames > 3 else frames,
        view=np.deg2rad(view_deg + rng.normal(0, 1.5)),
        phase=float(rng.uniform(0, 2 * np.pi)),
        cadence=float(rng.normal(1.0, 0.03)),
        stride=float(rng.normal(1.0, 0.05)),
        stature_px=float(rng.uniform(0.5, 0.72)),
        camera_height=float(rng.uniform(0.42, 0.62)),
        depth=float(rng.uniform(3.6, 4.4)),
        along=float(rng.uniform(-0.25, 0.25)),
        x_frac=float(rng.uniform(0.25, 0.75)),
        ground_frac=float(rng.uniform(0.88, 0.97)),
    )
    # Covariates are drawn last, so one generator state gives the same shot in every condition.
    bag = None
    if condition == "bg":
        bag = body.bag if rng.random() < 0.7 else BAGS[int(rng.integers(len(BAGS)))]
    return Shot(**shot, bag=bag, coat=condition == "cl")


# ------------------------------------------------------------------ kinematics
# Local frame of the walker: components (f, u, r) = forward, up, right.


def _vec(f, u, r):
    f, u, r = np.broadcast_arrays(f, u, r)
    return np.stack([f, u, r], axis=-1)


def pose(body: Body, shot: Shot) -> dict[str, np.ndarray]:
    """Joint positions [T, 3] in the walker's frame for every frame, ground at u = 0."""
    t = np.arange(shot.frames) / FPS
    cycle = body.cycle / shot.cadence
    phi = 2 * np.pi * t / cycle + shot.phase
    hip_swing = body.hip_swing * shot.stride
    hand_bag = shot.bag == "hand"

    twist = body.twist * np.sin(phi)
    zero = np.zeros_like(t)
    joints: dict[str, np.ndarray] = {}
    lowest = []
    leg_len = body.hip_height - 0.04
    thigh = leg_len * body.thigh_fraction
    shin = leg_len - thigh
    for side, sign, offset in (("l", -1.0, 0.0), ("r", 1.0, np.pi)):
        ph = phi + offset
        amp = hip_swing * (1 + sign * body.asymmetry / 2)
        theta = amp * np.sin(ph) + body.hip_offset
        # knee flexion: a raised-cosine bump centred just before mid-swing
        lag = np.angle(np.exp(1j * (ph + 0.3)))
        width = 0.55 * np.pi
        knee = body.knee_stance + body.knee_swing * 0.5 * (1 + np.cos(np.clip(lag / width, -1, 1) * np.pi))
        hip = _vec(-sign * body.hip_half * np.sin(twist), zero, sign * body.hip_half * np.cos(twist))
        knee_p = hip + thigh * _vec(np.sin(theta), -np.cos(theta), zero)
        shin_angle = theta - knee
        ankle = knee_p + shin * _vec(np.sin(shin_angle), -np.cos(shin_angle), zero)
        toe_down = np.maximum(0.0, -shin_angle) * 0.8
        foot_dir = _vec(np.cos(toe_down), -np.sin(toe_down), zero)
        heel = ankle - 0.035 * foot_dir - _vec(zero, 0.02 + zero, zero)
        toe = ankle + (body.foot - 0.035) * foot_dir - _vec(zero, 0.025 + zero, zero)
        joints.update(
            {
                f"hip_{side}": hip,
                f"knee_{side}": knee_p,
                f"ankle_{side}": ankle,
                f"heel_{side}": heel,
                f"toe_{side}": toe,
            }
        )
        lowest += [heel[:, 1] - 0.02, toe[:, 1] - 0.018]
    # Lift the pelvis so that the lowest point of either foot touches the ground:
    # this gives the walk its vertical bounce without a separate parameter.
    lift = -np.min(np.stack(lowest), axis=0)
    sway = body.sway * np.sin(phi)
    for name in list(joints):
        joints[name] = joints[name] + _vec(zero, lift, sway)
    pelvis = _vec(zero, lift, sway)

    lean = body.lean + (0.05 if shot.bag == "backpack" else 0.0) + 0.015 * np.sin(2 * phi)
    axis = _vec(np.sin(lean), np.cos(lean), zero)
    front = _vec(np.cos(lean), -np.sin(lean), zero)
    torso = body.shoulder_height - body.hip_height
    neck = pelvis + torso * axis
    joints.update(
        pelvis=pelvis,
        neck=neck,
        torso_axis=axis,
        torso_front=front,
        torso_right=_vec(np.sin(-twist), zero, np.cos(-twist)),
    )
    for side, sign, offset in (("l", -1.0, 0.0), ("r", 1.0, np.pi)):
        ph = phi + offset
        carries = hand_bag and side == "r"
        swing = body.arm_swing * (0.3 if carries else shot.stride)
        alpha = body.arm_offset - swing * np.sin(ph)
        ab = body.arm_abduction + (0.12 if carries else 0.0)
        shoulder = neck + sign * body.shoulder_half * joints["torso_right"]
        elbow = shoulder + body.upper_arm * _vec(
            np.sin(alpha) * np.cos(ab), -np.cos(alpha) * np.cos(ab), sign * np.sin(ab) + zero
        )
        bend = body.elbow_bend + body.elbow_swing * np.maximum(0, np.sin(alpha)) / max(np.sin(swing), 1e-3)
        bend = np.minimum(bend, body.elbow_bend + body.elbow_swing)
        fa = alpha + bend
        wrist = elbow + body.forearm * _vec(np.sin(fa) * np.cos(ab), -np.cos(fa) * np.cos(ab), sign * np.sin(ab) + zero)
        joints.update(
            {
                f"shoulder_{side}": shoulder,
                f"elbow_{side}": elbow,
                f"wrist_{side}": wrist,
                f"hand_{side}": wrist + 0.06 * _vec(np.sin(fa), -np.cos(fa), zero),
            }
        )
    joints["head"] = neck + (0.045 + body.head_radius) * axis + _vec(body.head_forward + zero, zero, zero)
    return joints


# ------------------------------------------------------------------- solids


@dataclass
class Solids:
    """The body as solids in the walker's frame, each array over frames."""

    capsules: list  # (a [T,3], b [T,3], ra, rb)
    ellipsoids: list  # (centre [T,3], axes [T,3,3] columns = semi-axis vectors)
    hulls: list  # point clouds [T, K, 3] drawn as their projected convex hull


def _ellipsoid(centre, front, up, right, sf, su, sr):
    axes = np.stack([front * sf, up * su, right * sr], axis=-1)  # [T, 3, 3], columns
    return centre, axes


def solids(body: Body, shot: Shot, j: dict[str, np.ndarray]) -> Solids:
    coat = shot.coat
    wide = body.coat_width if coat else 1.0
    sleeve = 1.35 if coat else 1.0
    caps = []
    for s in "lr":
        caps += [
            (j[f"hip_{s}"], j[f"knee_{s}"], body.thigh_radius, body.knee_radius),
            (j[f"knee_{s}"], j[f"ankle_{s}"], body.knee_radius * 0.95, body.ankle_radius),
            (j[f"heel_{s}"], j[f"toe_{s}"], 0.028, 0.02),
            (j[f"shoulder_{s}"], j[f"elbow_{s}"], body.upper_arm_radius * sleeve, body.forearm_radius * 1.05 * sleeve),
            (j[f"elbow_{s}"], j[f"wrist_{s}"], body.forearm_radius * sleeve, body.forearm_radius * 0.8 * sleeve),
            (j[f"wrist_{s}"], j[f"hand_{s}"], 0.024, 0.02),
        ]
    caps.append(
        (j["shoulder_l"], j["shoulder_r"], body.upper_arm_radius * 1.1 * sleeve, body.upper_arm_radius * 1.1 * sleeve)
    )
    caps.append((j["neck"], j["head"], 0.034, 0.034))

    a, f, r = j["torso_axis"], j["torso_front"], j["torso_right"]
    up = np.broadcast_to(np.array([0.0, 1.0, 0.0]), a.shape)
    fwd = np.broadcast_to(np.array([1.0, 0.0, 0.0]), a.shape)
    side = np.broadcast_to(np.array([0.0, 0.0, 1.0]), a.shape)
    torso = body.shoulder_height - body.hip_height
    ell = [
        _ellipsoid(j["neck"] - 0.1 * a, f, a, r, body.chest_depth * wide, 0.125, body.shoulder_half * 0.95 * wide),
        _ellipsoid(j["pelvis"] + 0.45 * torso * a, f, a, r, body.belly_depth * wide, 0.11, body.waist_half * wide),
        _ellipsoid(
            j["pelvis"] + 0.03 * a, fwd, up, side, 0.075 * wide, 0.085, (body.hip_half + 0.6 * body.thigh_radius) * wide
        ),
        _ellipsoid(j["head"], fwd, up, side, body.head_radius * 1.05, body.head_radius * 1.15, body.head_radius * 0.92),
    ]
    if shot.bag == "backpack":
        ell.append(_ellipsoid(j["neck"] - 0.17 * a - (body.chest_depth + 0.075) * f, f, a, r, 0.075, 0.16, 0.125))
    elif shot.bag == "shoulder":
        centre = j["pelvis"] + 0.08 * a + (body.hip_half + body.thigh_radius + 0.04) * side + 0.03 * f
        ell.append(_ellipsoid(centre, fwd, up, side, 0.11, 0.1, 0.04))
        caps.append((j["shoulder_l"], centre, 0.008, 0.008))
    elif shot.bag == "hand":
        ell.append(_ellipsoid(j["hand_r"] - np.array([0.0, 0.1, 0.0]), fwd, up, side, 0.11, 0.09, 0.04))

    hulls = []
    if coat:
        # The skirt: convex hull of an ellipse at the waist and one at the hem,
        # wide enough to cover both thighs, so the thighs' swing is hidden.
        waist = j["pelvis"] + 0.35 * torso * a
        hem_h = body.hip_height * (1 - body.coat_length * 0.55)
        frac = np.clip((j["pelvis"][:, 1] - hem_h) / np.maximum(j["pelvis"][:, 1] - j["knee_l"][:, 1], 1e-3), 0, 1.2)
        fl = j["hip_l"][:, 0] + frac * (j["knee_l"][:, 0] - j["hip_l"][:, 0])
        fr = j["hip_r"][:, 0] + frac * (j["knee_r"][:, 0] - j["hip_r"][:, 0])
        hem_c = np.stack([(fl + fr) / 2, np.full_like(fl, hem_h), j["pelvis"][:, 2]], -1)
        hem_f = np.abs(fl - fr) / 2 + body.thigh_radius + 0.03
        ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        ring = np.stack([np.cos(ang), np.zeros_like(ang), np.sin(ang)], -1)  # [K, 3]
        w_axes = np.array([body.belly_depth * wide * 1.05, 0, body.waist_half * wide * 1.05])
        h_axes = np.stack(
            [hem_f, np.zeros_like(hem_f), np.full_like(hem_f, (body.hip_half + body.thigh_radius) * wide + 0.03)], -1
        )
        pts = np.concatenate(
            [waist[:, None, :] + ring[None] * w_axes, hem_c[:, None, :] + ring[None] * h_axes[:, None, :]], axis=1
        )
        hulls.append(pts)
    return Solids(caps, ell, hulls)


# ------------------------------------------------------------------- camera


@dataclass
class Camera:
    """Perspective camera; the walker's frame is mapped to camera coordinates (x right, y up, z depth)."""

    focal: float
    origin: np.ndarray  # [T, 3] camera position of the walker's ground origin
    forward: np.ndarray  # [3] walking direction
    right: np.ndarray  # [3]
    cx: float
    cy: float

    def to_camera(self, p: np.ndarray) -> np.ndarray:
        """p [T, ..., 3] (f, u, r) -> camera coordinates [T, ..., 3]."""
        extra = p.ndim - 2
        o = self.origin.reshape(self.origin.shape[:1] + (1,) * extra + (3,))
        return o + p[..., :1] * self.forward + p[..., 1:2] * np.array([0.0, 1.0, 0.0]) + p[..., 2:3] * self.right

    def project(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates [..., 2] and pixels per unit at that depth [...]."""
        c = self.to_camera(p)
        z = np.maximum(c[..., 2], 0.3)
        scale = self.focal / z
        return np.stack([self.cx + c[..., 0] * scale, self.cy - c[..., 1] * scale], -1), scale

    def rotate(self, v: np.ndarray) -> np.ndarray:
        """Direction vectors (f, u, r) -> camera directions (no translation)."""
        return v[..., :1] * self.forward + v[..., 1:2] * np.array([0.0, 1.0, 0.0]) + v[..., 2:3] * self.right


def place_camera(body: Body, shot: Shot, joints: dict[str, np.ndarray], width: int, height: int) -> Camera:
    """Walk through the scene, then shift the image so the walker sits where the shot says."""
    t = np.arange(shot.frames) / FPS
    cycle = body.cycle / shot.cadence
    step = 2 * (body.hip_height - 0.04) * np.sin(body.hip_swing * shot.stride)
    speed = 2 * step / cycle
    travel = speed * (t - t.mean()) + shot.along
    fwd = np.array([np.sin(shot.view), 0.0, -np.cos(shot.view)])
    right = np.array([np.cos(shot.view), 0.0, np.sin(shot.view)])
    origin = np.array([0.0, -shot.camera_height, shot.depth]) + travel[:, None] * fwd
    focal = shot.stature_px * height * shot.depth
    cam = Camera(focal, origin, fwd, right, 0.0, 0.0)
    # Where do the feet and the head land with the principal point at 0?
    pts = np.concatenate(
        [
            joints["head"][:, None],
            joints["toe_l"][:, None],
            joints["toe_r"][:, None],
            joints["heel_l"][:, None],
            joints["heel_r"][:, None],
            joints["pelvis"][:, None],
        ],
        1,
    )
    uv, _ = cam.project(pts)
    mid = shot.frames // 2
    ground_y = uv[mid, 1:5, 1].max()
    top = uv[:, 0, 1].min() - 0.09 * height
    cy = shot.ground_frac * height - ground_y
    cy = max(cy, 2 - top)  # keep the head inside the frame when the walker is tall
    xs = uv[:, 5, 0]
    span = xs.max() - xs.min()
    margin = 0.09 * height
    lo, hi = margin - xs.min(), width - margin - xs.max()
    cx = lo + shot.x_frac * (hi - lo) if hi > lo else (width - span) / 2 - xs.min()
    cam.cx, cam.cy = float(cx), float(cy)
    return cam


# ------------------------------------------------------------------ drawing


def _fixed(x: np.ndarray) -> np.ndarray:
    return np.round(x * ONE).astype(np.int32)


def _capsule_polys(a2, b2, ra, rb):
    """Tangent quadrilaterals [T, 4, 2] of two discs, and whether each exists."""
    d = b2 - a2
    length = np.linalg.norm(d, axis=-1, keepdims=True)
    e = d / np.maximum(length, 1e-6)
    n = np.stack([-e[..., 1], e[..., 0]], -1)
    s = np.clip((ra - rb)[..., None] / np.maximum(length, 1e-6), -1, 1)
    c = np.sqrt(1 - s**2)
    t1 = n * c + e * s
    t2 = -n * c + e * s
    quad = np.stack(
        [a2 + ra[..., None] * t1, b2 + rb[..., None] * t1, b2 + rb[..., None] * t2, a2 + ra[..., None] * t2], -2
    )
    ok = length[..., 0] > np.abs(ra - rb) + 1e-3
    return quad, ok


def _ellipse_params(centre2, cov):
    """cv2.ellipse parameters from a 2D covariance-like shape matrix [T, 2, 2]."""
    a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    mid = (a + c) / 2
    rad = np.sqrt(((a - c) / 2) ** 2 + b**2)
    major = np.sqrt(np.maximum(mid + rad, 1e-6))
    minor = np.sqrt(np.maximum(mid - rad, 1e-6))
    angle = np.degrees(0.5 * np.arctan2(2 * b, a - c))
    return centre2, major, minor, angle


def render(body: Body, shot: Shot, width: int, height: int) -> list[np.ndarray]:
    """The clean binary silhouettes (uint8, 0 or 255) of one sequence."""
    joints = pose(body, shot)
    cam = place_camera(body, shot, joints, width, height)
    sol = solids(body, shot, joints)
    T = shot.frames

    caps = []
    for a, b, ra, rb in sol.capsules:
        a2, sa = cam.project(a)
        b2, sb = cam.project(b)
        ra_px, rb_px = ra * sa, rb * sb
        quad, ok = _capsule_polys(a2, b2, ra_px, rb_px)
        caps.append((_fixed(a2), _fixed(ra_px), _fixed(b2), _fixed(rb_px), _fixed(quad), ok))
    ells = []
    for centre, axes in sol.ellipsoids:
        c2, s = cam.project(centre)
        ax = cam.rotate(np.swapaxes(axes, -1, -2))  # [T, 3 semi-axes, 3 camera coords]
        ax2 = ax[..., :2] * np.array([1.0, -1.0]) * s[:, None, None]
        cov = np.einsum("tki,tkj->tij", ax2, ax2)
        c2, major, minor, angle = _ellipse_params(c2, cov)
        ells.append((_fixed(c2), _fixed(major), _fixed(minor), angle))
    hulls = [_fixed(cam.project(pts)[0]) for pts in sol.hulls]

    frames = []
    for t in range(T):
        img = np.zeros((height, width), np.uint8)
        for a2, ra, b2, rb, quad, ok in caps:
            cv2.circle(img, (int(a2[t, 0]), int(a2[t, 1])), int(ra[t]), 255, -1, cv2.LINE_8, SHIFT)
            cv2.circle(img, (int(b2[t, 0]), int(b2[t, 1])), int(rb[t]), 255, -1, cv2.LINE_8, SHIFT)
            if ok[t]:
                cv2.fillConvexPoly(img, quad[t], 255, cv2.LINE_8, SHIFT)
        for c2, major, minor, angle in ells:
            cv2.ellipse(
                img,
                (int(c2[t, 0]), int(c2[t, 1])),
                (int(major[t]), int(minor[t])),
                float(angle[t]),
                0,
                360,
                255,
                -1,
                cv2.LINE_8,
                SHIFT,
            )
        for pts in hulls:
            cv2.fillConvexPoly(img, cv2.convexHull(pts[t]), 255, cv2.LINE_8, SHIFT)
        frames.append(img)
    return frames


# -------------------------------------------------------------------- noise


def add_noise(img: np.ndarray, rng: np.random.Generator, rate: float) -> np.ndarray:
    """Segmentation noise as background subtraction makes it, each kind at a multiple of `rate`."""
    if rate <= 0:
        return img
    h, w = img.shape
    u = rng.random(6)
    if u[0] < rate * 0.4:  # a missing frame: the segmenter found nothing
        return np.zeros_like(img)
    ys, xs = np.nonzero(img[::4, ::4])
    if len(ys) == 0:
        return img
    y0, y1 = max(0, ys.min() * 4 - 4), min(h, ys.max() * 4 + 8)
    x0, x1 = max(0, xs.min() * 4 - 4), min(w, xs.max() * 4 + 8)
    if u[1] < rate * 0.4:  # truncated: a band of rows lost (occlusion, frame edge)
        cut = int((y1 - y0) * rng.uniform(0.15, 0.4))
        if rng.random() < 0.5:
            img[y1 - cut : y1] = 0
        else:
            img[y0 : y0 + cut] = 0
    if u[2] < min(1.0, rate * 5):  # ragged edges: flip pixels along the outline
        box = img[y0:y1, x0:x1]
        kernel = np.ones((3, 3), np.uint8)
        band = cv2.dilate(box, kernel) != cv2.erode(box, kernel)
        flip = band & (rng.random(box.shape) < 0.35)
        box[flip] = 255 - box[flip]
    if u[3] < min(1.0, rate * 4):  # holes inside the body
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.integers(y0, y1), rng.integers(x0, x1)
            cv2.ellipse(
                img,
                (int(cx), int(cy)),
                (int(rng.integers(2, 7)), int(rng.integers(2, 9))),
                float(rng.uniform(0, 180)),
                0,
                360,
                0,
                -1,
            )
    if u[4] < min(1.0, rate * 2):  # spurious blobs (shadows, moving background)
        for _ in range(int(rng.integers(1, 3))):
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            cv2.ellipse(
                img,
                (int(cx), int(cy)),
                (int(rng.integers(2, 10)), int(rng.integers(2, 6))),
                float(rng.uniform(0, 180)),
                0,
                360,
                255,
                -1,
            )
    return img
