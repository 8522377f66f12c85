"""Extra-network tags <name:args> and the handler registry (spec §5.1)."""
import pytest

from modules.networks.extra_networks import (
    ExtraNetwork,
    ExtraNetworkParams,
    ExtraNetworkRegistry,
    parse_prompt,
    parse_prompts,
    re_extra_net,
)


def test_spec_docstring_example():
    prompt, data = parse_prompt("1girl, <hypernet:agm:1.1> <extrasupernet:master:12:13:14> <hypernet:ray>")
    assert prompt == "1girl,   "
    assert data["hypernet"] == [ExtraNetworkParams(items=["agm", "1.1"]), ExtraNetworkParams(items=["ray"])]
    assert data["extrasupernet"] == [ExtraNetworkParams(items=["master", "12", "13", "14"])]
    assert list(data) == ["hypernet", "extrasupernet"]


def test_params_positional_and_named():
    p = ExtraNetworkParams(["my_lora", "0.8", "te=0.5", "unet=1", "a=b=c", "=x"])
    assert p.positional == ["my_lora", "0.8", "a=b=c"]
    assert p.named == {"te": "0.5", "unet": "1", "": "x"}
    assert p.items == ["my_lora", "0.8", "te=0.5", "unet=1", "a=b=c", "=x"]
    assert ExtraNetworkParams(["a"]) == ExtraNetworkParams(["a"]) != ExtraNetworkParams(["b"])
    assert ExtraNetworkParams().items == []
    assert ExtraNetworkParams(["a"]) != ["a"]


def test_regex_and_what_is_not_a_tag():
    assert re_extra_net.pattern == r"<(\w+):([^>]+)>"
    text = "a <lora:x> <no tag> <:x> <lora:> <lora-x:1> <lora:a:b>>"
    prompt, data = parse_prompt(text)
    assert prompt == "a  <no tag> <:x> <lora:> <lora-x:1> >"
    assert data["lora"] == [ExtraNetworkParams(["x"]), ExtraNetworkParams(["a", "b"])]
    assert set(data) == {"lora"}


def test_tags_spanning_arguments_with_spaces_and_dots():
    prompt, data = parse_prompt("<lora:My Style v1.5:0.7>, cat")
    assert prompt == ", cat"
    assert data["lora"][0].items == ["My Style v1.5", "0.7"]


def test_parse_prompts_uses_first_prompt_data_and_keeps_input():
    prompts = ["a <lora:x:1>", "b <lora:y:1> <hypernet:h>"]
    stripped, data = parse_prompts(prompts)
    assert stripped == ["a ", "b  "]
    assert dict(data) == {"lora": [ExtraNetworkParams(["x", "1"])]}
    assert prompts == ["a <lora:x:1>", "b <lora:y:1> <hypernet:h>"]  # the stored prompts keep their tags
    assert parse_prompts([]) == ([], {})


class Recorder(ExtraNetwork):
    def __init__(self, name, log, fail=None):
        super().__init__(name)
        self.log = log
        self.fail = fail

    def activate(self, context, params_list):
        self.log.append(("activate", self.name, [p.items for p in params_list]))
        if self.fail and params_list:
            raise self.fail

    def deactivate(self, context):
        self.log.append(("deactivate", self.name))


@pytest.fixture
def setup():
    log = []
    registry = ExtraNetworkRegistry()
    registry.register(Recorder("lora", log), aliases=("lyco",))
    registry.register(Recorder("hypernet", log))
    return registry, log


def test_registry_lookup(setup):
    registry, _ = setup
    assert registry.get("lora").name == "lora"
    assert registry.get("lyco") is registry.get("lora")
    assert registry.get("nope") is None
    assert [n.name for n in registry] == ["lora", "hypernet"]
    assert ExtraNetworkRegistry().get("lora") is None  # instances, not a global


def test_activate_mentioned_then_unmentioned_with_empty(setup):
    registry, log = setup
    _, data = parse_prompt("<lora:a:1> <lyco:b:0.5> <hypernet:h>")
    assert registry.activate(object(), data) == []
    assert log == [("activate", "lora", [["a", "1"], ["b", "0.5"]]), ("activate", "hypernet", [["h"]])]

    log.clear()
    _, data = parse_prompt("<lora:a:1>")
    registry.activate(None, data)
    assert log == [("activate", "lora", [["a", "1"]]), ("activate", "hypernet", [])]  # hypernet unloaded


def test_unknown_tag_warns_and_the_rest_still_runs(setup):
    registry, log = setup
    _, data = parse_prompt("<extrasupernet:master:12> <lora:a>")
    warnings = registry.activate(None, data)
    assert len(warnings) == 1 and "extrasupernet" in warnings[0]
    assert log == [("activate", "lora", [["a"]]), ("activate", "hypernet", [])]


def test_failing_handler_becomes_a_warning(setup):
    registry, log = setup
    log2 = []
    registry.register(Recorder("broken", log2, fail=FileNotFoundError("no such LoRA: zz")))
    _, data = parse_prompt("<broken:zz> <hypernet:h>")
    warnings = registry.activate(None, data)
    assert len(warnings) == 1
    assert "broken" in warnings[0] and "no such LoRA: zz" in warnings[0] and "FileNotFoundError" in warnings[0]
    assert ("activate", "hypernet", [["h"]]) in log and ("activate", "lora", []) in log
    # the failed one is then reset with an empty list, like an unmentioned one
    assert log2 == [("activate", "broken", [["zz"]]), ("activate", "broken", [])]


def test_failing_reset_and_deactivate_warn(setup):
    registry, log = setup

    class Bad(ExtraNetwork):
        def activate(self, context, params_list):
            raise RuntimeError("gpu on fire")

        def deactivate(self, context):
            raise RuntimeError("still on fire")

    registry.register(Bad("bad"))
    warnings = registry.activate(None, {})
    assert len(warnings) == 1 and "bad" in warnings[0] and "gpu on fire" in warnings[0]
    warnings = registry.deactivate(None, parse_prompt("<hypernet:h>")[1])
    assert len(warnings) == 1 and "still on fire" in warnings[0]
    assert [e for e in log if e[0] == "deactivate"] == [("deactivate", "hypernet"), ("deactivate", "lora")]


def test_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        ExtraNetwork("x").activate(None, [])
