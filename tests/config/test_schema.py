"""The schema is the pydantic models of inflor.config.models; SCHEMA, the defaults and the error
messages follow from them."""
import pytest

from inflor.config import SCHEMA, ConfigError, default_config, load_config
from inflor.config.models import Config, Optim


def test_schema_keys_and_defaults_come_from_the_models():
    assert SCHEMA["optim.lr"][0] == Optim.model_fields["lr"].default == 0.1
    assert SCHEMA["optim.lr"][1].doc == "number > 0"
    assert SCHEMA["sched.epochs"][1].doc == "integer >= 1 or null"
    assert SCHEMA["train.progress"][1].doc == "auto | bar | plain | none"
    assert SCHEMA["optim.betas"][1].doc == "[b1, b2]"
    assert set(SCHEMA) == {k for k in SCHEMA if k.split(".")[0] in Config.model_fields}
    assert default_config() == Config().model_dump()


def test_values_are_typed_strictly_and_read_as_the_run_uses_them():
    cfg = load_config(None, ["train.epochs=3.0", "optim.lr=1", "optim.name=ADAM", "name=7"])
    assert cfg["train"]["epochs"] == 3 and isinstance(cfg["train"]["epochs"], int)
    assert cfg["optim"]["lr"] == 1.0 and isinstance(cfg["optim"]["lr"], float)
    assert (cfg["optim"]["name"], cfg["name"]) == ("adam", "7")


@pytest.mark.parametrize("override, message", [
    ("optim.lr='0.1'", "'optim.lr' must be a number, got '0.1'"),
    ("optim.lr=0", "'optim.lr' must be > 0, got 0"),
    ("optim.momentum=1.5", "'optim.momentum' must be <= 1, got 1.5"),
    ("train.epochs=2.5", "'train.epochs' must be an integer, got 2.5"),
    ("sched.epochs=true", "'sched.epochs' must be an integer or null, got True"),
    ("train.amp=1", "'train.amp' must be true or false, got 1"),
    ("optim.name=sgdd", "invalid value 'sgdd' for 'optim.name'; valid choices: sgd, adam, adamw"),
    ("optim=3", "'optim' must be a mapping with keys name, lr, momentum, nesterov, weight_decay, wd_on_bn_bias, "
                "betas; got 3"),
    ("loss={im: {wieght: 1}}", "unknown key 'loss.im.wieght'; valid keys under 'loss.im': weight, form, "
                               "drop_first_last (did you mean 'loss.im.weight'?)"),
    ("model.options.surrogate={name: esg, k_max: x}", "'model.options.surrogate.k_max' must be a number, got 'x'"),
])
def test_messages_name_the_key_the_expectation_and_the_value(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert str(e.value) == message
