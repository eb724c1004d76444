"""The scene generator: deterministic by seed, and every box exactly bounds its object's pixels."""

import dataclasses

import numpy as np
import pytest

from tensorrt_yolox_py.devkit.scene import SceneConfig, SceneGenerator
from tensorrt_yolox_py.devkit.sprites import CLASS_NAMES

CLEAN = SceneConfig(width=960, height=640, effects=False, contact_shadows=False)


def test_same_seed_same_frame_and_labels() -> None:
    gen = SceneGenerator()
    a, b = gen.render(11), gen.render(11)
    assert a.image.shape == (1280, 1920, 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image)
    assert a.objects == b.objects and a.ignored == b.ignored
    # a fresh generator (as in another worker process) gives the same frame too
    assert np.array_equal(SceneGenerator().render(11, time_s=0.3, camera=2).image,
                          gen.render(11, time_s=0.3, camera=2).image)


def test_different_seeds_and_times_differ() -> None:
    gen = SceneGenerator(CLEAN)
    assert not np.array_equal(gen.render(1).image, gen.render(2).image)
    a, b = gen.render(5, time_s=0.0), gen.render(5, time_s=0.5)
    assert not np.array_equal(a.image, b.image)
    moved = {o.instance: o.box for o in a.objects}
    assert any(moved.get(o.instance) not in (None, o.box) for o in b.objects), \
        'objects of one scene should move between time steps'


@pytest.mark.parametrize('seed', [3, 17, 42])
def test_boxes_are_tight_bounds_of_instance_pixels(seed: int) -> None:
    scene = SceneGenerator(CLEAN).render(seed, return_instances=True)
    ids = scene.instances
    assert scene.objects, 'every scene has labelled objects'
    for obj in scene.objects + scene.ignored:
        ys, xs = np.nonzero(ids == obj.instance)
        assert xs.size > 0
        x0, y0, x1, y1 = obj.box
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
        assert 0 <= x0 < x1 <= 960 and 0 <= y0 < y1 <= 640


@pytest.mark.parametrize('seed', [7, 23])
def test_boxes_match_the_pixels_each_object_changes(seed: int) -> None:
    """Independent check: hide one object and re-render; the changed pixels span its box.

    Both renders use no photometric effects and no ground shadows, so the only pixels that
    change are the object's visible pixels (after occlusion by anything nearer).
    """
    gen = SceneGenerator(CLEAN)
    layout = gen.layout(seed)
    scene = gen.render(seed, layout=layout)
    for obj in scene.objects + scene.ignored:
        things = list(layout.things)
        things[obj.instance - 1] = dataclasses.replace(things[obj.instance - 1], z=-1.0)
        without = gen.render(seed, layout=dataclasses.replace(layout, things=things))
        ys, xs = np.nonzero(np.any(scene.image != without.image, axis=2))
        x0, y0, x1, y1 = obj.box
        # every changed pixel lies inside the box, and the box touches changed pixels on
        # all four sides
        assert xs.min() == x0 and xs.max() + 1 == x1, obj
        assert ys.min() == y0 and ys.max() + 1 == y1, obj


def test_occluded_and_tiny_objects_are_ignored_not_labelled() -> None:
    config = dataclasses.replace(CLEAN, min_visible=0.2, min_box_px=8.0)
    gen = SceneGenerator(config)
    seen_ignored = 0
    for seed in range(40):
        scene = gen.render(seed, return_instances=True)
        for obj in scene.objects:
            assert obj.visible >= 0.2
            assert obj.box[2] - obj.box[0] >= 4 and obj.box[3] - obj.box[1] >= 4
        for obj in scene.ignored:
            small = min(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1]) < 4
            assert obj.visible < 0.2 or small
        seen_ignored += len(scene.ignored)
    assert seen_ignored > 0, 'occlusion should hide some objects in 40 scenes'


def test_all_eight_classes_appear_with_varied_sizes() -> None:
    gen = SceneGenerator(dataclasses.replace(CLEAN, effects=True))
    classes, heights = set(), []
    for seed in range(60):
        for obj in gen.render(seed).objects:
            classes.add(obj.class_id)
            heights.append(obj.box[3] - obj.box[1])
    assert classes == set(range(len(CLASS_NAMES)))
    assert min(heights) < 25 and max(heights) > 200, 'scale changes: small and large objects'


def test_effects_change_pixels_but_not_labels() -> None:
    clean = SceneGenerator(CLEAN).render(9)
    real = SceneGenerator(dataclasses.replace(CLEAN, effects=True,
                                              contact_shadows=False)).render(9)
    assert clean.objects == real.objects
    assert np.abs(clean.image.astype(int) - real.image.astype(int)).mean() > 1.0


def test_bad_configuration_raises() -> None:
    with pytest.raises(ValueError, match='at least 64x64'):
        SceneGenerator(SceneConfig(width=10, height=10))
    with pytest.raises(ValueError, match='class_weights'):
        SceneGenerator(SceneConfig(class_weights=(1.0, 2.0)))
    with pytest.raises(ValueError, match='class_weights'):
        SceneGenerator(SceneConfig(class_weights=(0.0,) * 8))
