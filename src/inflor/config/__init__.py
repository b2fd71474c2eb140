"""Run configuration: a nested dict with defaults, loaded from YAML recipes and overridden with
``dotted.key=value`` arguments, validated before any work is done.

Sections (every key, its default and its check are in ``SCHEMA`` below; ``docs/training.md``
renders the same table)::

    name, description                      run name (default: the recipe's file name) and a note
    model:  name, options{...}              options go to inflor.models.create_model (it checks them);
                                            ESG is the surrogate option {name: esg, k_min, k_max}
    data:   name, root, batch_size, test_batch_size, workers, drop_last, options{...}
    optim:  name (sgd|adam|adamw), lr, momentum, nesterov, weight_decay, wd_on_bn_bias, betas
    sched:  name (cosine|none), epochs (cosine period, default train.epochs), warmup, min_lr
    loss:   task (ce_mean|ce_per_step), label_smoothing,
            mpd: {weight, terms, k_d, k_s, k_m},  im: {weight, form (paper|official), drop_first_last}
    train:  epochs, seed, deterministic, amp, amp_dtype, device, log_every, eval_every, save_every,
            grad_clip, max_steps_per_epoch, stop_after_epochs, progress, tensorboard, init_from
    paper:  name, table, row, reported_acc, reported_std, notes   (metadata only; notes may be a
            mapping {topic: where it comes from}, merged topic by topic through ``extends``)
    stages: null, or {stage name: settings} run in order, each from the previous one's weights
            (a warm-up, then the main training; ``inflor.train.stages``)

Modules: ``models`` (the schema as pydantic v2 models, one per section), ``schema`` (the
models as dotted keys, ``SCHEMA``, and their errors as user messages; ``checks`` holds the checks
of the structured values),
``validate`` (resolved configs, cross-field rules, stages), ``overrides`` (``dotted.key=value``),
``recipes`` (files and ``extends``), ``diff``, ``yamlio``, ``docs`` (the generated pages).
This package imports only pydantic, PyYAML, ``inflor.errors`` and ``inflor.epochspec``; ``inflor.train.config``
re-exports it unchanged.

A recipe may start with ``extends: <recipe name or relative path>``: the named recipe is loaded
first and this one is merged over it (dicts merge key by key, everything else is replaced;
a component spec naming another component, such as another surrogate, replaces the base's).
YAML values such as ``1e-4`` are read as numbers (plain PyYAML would read them as strings).
"""
from inflor.errors import ConfigError

from .checks import NOTE_TOPICS
from .diff import config_diff
from .overrides import apply_overrides, parse_overrides
from .recipes import list_recipes, load_config, load_recipe, recipe_path, recipes_dir
from .schema import (DEFAULTS, OPEN_SECTIONS, RESERVED_STAGE_NAMES, RUNTIME_KEYS, SCHEMA, SECTIONS, STAGE_SECTIONS,
                     default_config, esg_moved)
from .tree import get_key, merge, set_key
from .upgrade import upgrade_saved_config
from .validate import effective_model_options, stage_configs, validate_config
from .yamlio import dump_config, read_yaml, yaml_load

__all__ = ["ConfigError", "DEFAULTS", "SCHEMA", "SECTIONS", "NOTE_TOPICS", "RUNTIME_KEYS",
           "OPEN_SECTIONS", "STAGE_SECTIONS", "RESERVED_STAGE_NAMES", "default_config", "load_config", "load_recipe",
           "parse_overrides", "apply_overrides", "validate_config", "effective_model_options", "stage_configs", "recipe_path",
           "list_recipes", "recipes_dir", "dump_config", "read_yaml", "yaml_load", "merge",
           "get_key", "set_key", "config_diff", "esg_moved", "upgrade_saved_config"]
