"""Home and Methods in AppTest: Home is the default page, its tour and map open the right pages;
the catalogue's filters narrow the cards and Try it opens Train with the prepared set-up."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.methods import METHODS

APP = "../app.py"  # AppTest paths are relative to this file


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def methods_page() -> AppTest:
    at = new_app()
    at.switch_page("pages/methods.py").run()
    assert not at.exception
    return at


def card_titles(at: AppTest) -> list[str]:
    return [element.value for element in at.subheader]


def buttons(at: AppTest) -> dict:
    return {button.key: button for button in at.button}


def test_home_is_the_default_page_with_the_map_and_the_tour(mtl_store):
    at = new_app().run()
    assert not at.exception
    assert at.header[0].value.startswith("Multi-task learning")
    assert len(at.get("plotly_chart")) == 1
    assert {f"home.tour.{step}" for step in ("first", "conflict", "switch", "compare", "sharing", "scales")} <= set(buttons(at))
    # a link to the catalogue card of every method and architecture
    links = [link.proto for link in at.get("page_link")]
    assert len(links) == len(METHODS) + len(ARCHITECTURES)
    assert all(link.page.endswith("methods") for link in links)


@pytest.mark.parametrize("step, method", [("first", "ew"), ("conflict", "ew"), ("switch", "pcgrad"), ("scales", "uw")])
def test_a_tour_step_opens_train_with_its_config(mtl_store, step, method):
    at = new_app().run()
    buttons(at)[f"home.tour.{step}"].click().run()
    assert not at.exception
    assert at.header[0].value == "Train"
    assert RunConfig.from_query(dict(at.query_params)).method == method


def test_the_compare_step_opens_compare_with_a_grid_on_the_same_set_up(mtl_store):
    from mtl_core.runs.store import Store
    from mtl_core.runs.sweep import Grid

    at = new_app().run()
    buttons(at)["home.tour.compare"].click().run()
    assert not at.exception
    assert at.header[0].value == "Compare"
    grid = Grid.from_query(dict(at.query_params))
    assert grid.methods == ("ew", "pcgrad", "cagrad") and grid.seeds == (0, 1) and grid.archs == ("hps",)
    assert grid.base.model_dump(exclude={"method", "method_params"}) == \
        RunConfig.parse({"suite": "multidigits", "method": "pcgrad", "steps": 300,
                         "probe_every": 5}).model_dump(exclude={"method", "method_params"})
    assert Store(str(mtl_store)).list_runs().empty  # nothing trains until the grid is launched


def test_the_sharing_step_opens_the_sharing_page_on_mmoe(mtl_store):
    at = new_app().run()
    buttons(at)["home.tour.sharing"].click().run()
    assert not at.exception
    assert at.session_state["config"].arch == "mmoe"
    assert any(box.key == "sharing.arch" and box.value == "mmoe" for box in at.selectbox)


def test_the_catalogue_has_a_card_per_method_and_architecture():
    at = methods_page()
    titles = card_titles(at)
    assert [m.name for m in METHODS] + [a.name for a in ARCHITECTURES] == titles
    assert len(at.get("latex")) >= len(METHODS)
    tries = [key for key in buttons(at) if key.startswith("methods.try.")]
    assert len(tries) == len(METHODS) + len(ARCHITECTURES)


def test_filters_narrow_the_cards():
    at = methods_page()
    at.multiselect(key="methods.filter.category").set_value(["loss weighting"]).run()
    shown = set(card_titles(at)) & {m.name for m in METHODS}
    assert shown == {m.name for m in METHODS if m.category == "loss weighting"}

    at = methods_page()
    at.multiselect(key="methods.filter.cost").set_value(["one backward pass"]).run()
    shown = set(card_titles(at)) & {m.name for m in METHODS}
    assert shown and all(not m.needs_jacobian for m in METHODS if m.name in shown)
    assert "GradNorm" not in shown and "PCGrad" not in shown

    at = methods_page()
    at.get("button_group")[0].set_value("yes").run()
    shown = set(card_titles(at)) & {m.name for m in METHODS}
    assert shown == {m.name for m in METHODS if m.needs_jacobian}


def test_a_link_with_a_method_expands_its_card():
    at = new_app()
    at.switch_page("pages/methods.py")
    at.query_params["method"] = "pcgrad"
    at.run()
    assert not at.exception
    expanded = [e.label for e in at.expander if e.proto.expanded]
    assert expanded == ["Update rule, knobs and paper"]
    assert any("PCGrad" in info.value for info in at.info)


@pytest.mark.parametrize("owner, key", [("method", "pcgrad"), ("method", "static"), ("arch", "mmoe")])
def test_try_it_opens_train_with_the_prepared_config(mtl_store, owner, key):
    at = methods_page()
    buttons(at)[f"methods.try.{owner}.{key}"].click().run()
    assert not at.exception
    assert at.header[0].value == "Train"
    registry = METHODS if owner == "method" else ARCHITECTURES
    expected = RunConfig.parse(registry[key].extra["try_it"]["config"])
    assert RunConfig.from_query(dict(at.query_params)) == expected
    assert at.session_state["config"] == expected
