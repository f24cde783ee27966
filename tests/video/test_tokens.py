from __future__ import annotations

import random

import pytest

from serve_app.video.tokens import FACTOR, fit_frame_size, visual_tokens


@pytest.mark.parametrize(
    ("frames", "height", "width", "tokens"),
    [
        (2, 704, 1280, 880),  # 40 x 22 per frame pair (Qwen3-VL notes)
        (2, 640, 1152, 720),  # 36 x 20
        (2, 352, 640, 220),  # 20 x 11
        (20, 704, 1280, 8800),  # 10 pairs
        (3, 704, 1280, 1760),  # an odd frame still costs a whole pair
        (1, 32, 32, 1),
        (768, 32, 64, 768),
    ],
)
def test_visual_tokens(frames: int, height: int, width: int, tokens: int) -> None:
    assert visual_tokens(frames, height, width) == tokens


@pytest.mark.parametrize(("frames", "height", "width"), [(2, 720, 1280), (2, 704, 1270), (0, 64, 64), (2, 0, 64)])
def test_visual_tokens_rejects_bad_input(frames: int, height: int, width: int) -> None:
    with pytest.raises(ValueError):
        visual_tokens(frames, height, width)


@pytest.mark.parametrize(
    ("src", "max_pixels", "expected"),
    [
        ((1280, 720), 1280 * 736, (1280, 704)),  # 720p at the default cap: sides rounded down
        ((1280, 720), 1152 * 640, (1152, 640)),
        ((1280, 720), 640 * 360, (640, 352)),
        ((1920, 1080), 1280 * 736, (1280, 704)),
        ((720, 1280), 1280 * 736, (704, 1280)),  # portrait
        ((1000, 1000), 100_000, (288, 288)),  # 320x320 would be 102,400
        ((320, 240), 10**7, (320, 224)),  # never above the source (rounded down to 32)
        ((10, 10), 10**6, (32, 32)),  # except the 32 px minimum
        ((4000, 20), 10**6, (4000, 32)),  # extreme aspect: the short side stays 32
        ((1280, 720), 1024, (32, 32)),
    ],
)
def test_fit_frame_size(src: tuple[int, int], max_pixels: int, expected: tuple[int, int]) -> None:
    assert fit_frame_size(*src, max_pixels) == expected


def test_fit_frame_size_rejects_less_than_one_token() -> None:
    with pytest.raises(ValueError):
        fit_frame_size(1280, 720, 1023)


def test_fit_frame_size_properties() -> None:
    rng = random.Random(3)
    for _ in range(500):
        src_w, src_h = rng.randint(1, 4000), rng.randint(1, 4000)
        max_pixels = rng.randint(1024, 4_000_000)
        w, h = fit_frame_size(src_w, src_h, max_pixels)
        assert w % FACTOR == 0 and h % FACTOR == 0
        assert w >= FACTOR and h >= FACTOR
        assert w * h <= max_pixels
        assert w <= max(FACTOR, src_w // FACTOR * FACTOR)
        assert h <= max(FACTOR, src_h // FACTOR * FACTOR)
        if w > FACTOR and h > FACTOR:
            # Within one 32-px step of the source aspect (half a step from
            # rounding, up to a step where a side meets the source's size).
            aspect = src_w / src_h
            assert abs(h - w / aspect) <= FACTOR or abs(w - h * aspect) <= FACTOR
        # Largest: rounding to 32-px steps loses little area once sides are large.
        reachable = min(max_pixels, max(FACTOR, src_w // FACTOR * FACTOR) * max(FACTOR, src_h // FACTOR * FACTOR))
        if w >= 256 and h >= 256:
            assert w * h >= 0.6 * reachable
