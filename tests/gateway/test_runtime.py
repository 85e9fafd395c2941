"""The serving process's start-up settings (gateway.runtime)."""

import gc

import pytest

from gateway.runtime import collector_tune


@pytest.fixture
def collector_restored():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_a_serving_process_freezes_what_start_up_loaded_and_collects_less_often(settings, collector_restored):
    settings.GC_GEN0_THRESHOLD = 20_000
    collector_tune()
    assert gc.get_threshold() == (20_000, 50, 50)
    # The modules, settings and apps loaded so far: never scanned again.
    assert gc.get_freeze_count() > 10_000


def test_zero_leaves_pythons_collector_as_it_was(settings, collector_restored):
    settings.GC_GEN0_THRESHOLD = 0
    before = gc.get_threshold(), gc.get_freeze_count()
    collector_tune()
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
