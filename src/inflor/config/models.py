"""The config schema as pydantic v2 models: one class per section, every key a typed field with
its default and meaning. Plain values (numbers with bounds, integers, true/false, choices,
strings) are pydantic's own types and constraints, in strict mode (``"0.1"`` is not a number,
``true`` not an integer); the few structured values (``betas``, ``mpd.terms``, ``snapshots``,
``stages``, ...) are checked by the functions of ``checks.py``. ``schema.py`` turns pydantic's
errors into the messages a user sees, naming the key, what was expected and what it got.
"""
from typing import Annotated, Any, Callable, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .checks import _act_ckpt, _betas, _mpd_terms, _notes, _open_dict, _snapshots, _table

__all__ = ["Config", "Section", "ESGRange"]


def _integral(v):
    """``2.0`` (YAML may write an integer so) is the integer 2."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _text(v):
    """Numbers given for a string setting (a run name ``2``) are read as text."""
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


Int = Annotated[int, BeforeValidator(_integral)]
Str = Annotated[str, BeforeValidator(_text)]


def choice(*choices: str):
    """One of ``choices``, in any letter case."""
    def lower(v):
        return v.lower() if isinstance(v, str) and v.lower() in choices else v
    return Annotated[Literal[choices], BeforeValidator(lower)]


def checked(check: Callable, key: str):
    """A structured value checked by ``check(key, value)`` of ``checks.py`` (its ``doc`` is the
    value column of the docs table)."""
    return Annotated[Any, BeforeValidator(lambda v: check(key, v)), Field(json_schema_extra={"values": check.doc})]


def _stages_check(key, v):
    from .schema import check_stages     # the stage check validates each stage against Config
    return check_stages(key, v)


_stages_check.doc = "null or {stage: settings, ...} (in order)"


ModelOptions = checked(_open_dict, "model.options")
DataOptions = checked(_open_dict, "data.options")
OptimName = choice("sgd", "adam", "adamw")
OptimBetas = checked(_betas, "optim.betas")
SchedName = choice("cosine", "none")
LossMpdTerms = checked(_mpd_terms, "loss.mpd.terms")
IMForm = choice("paper", "official")
TaskLoss = choice("ce_mean", "ce_per_step")
AmpDtype = choice("auto", "float16", "bfloat16")
TrainActivationCheckpointing = checked(_act_ckpt, "train.activation_checkpointing")
Progress = choice("auto", "bar", "plain", "none")
Bptt = choice("full", "online")
HostAllocator = choice("auto", "heap", "system")
TrainSnapshots = checked(_snapshots, "train.snapshots")
PaperTable = checked(_table, "paper.table")
PaperNotes = checked(_notes, "paper.notes")
Stages = checked(_stages_check, "stages")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=False)


class Model(Section):
    name: Str = Field("tinyconv", description="a name of inflor.models.list_models()")
    options: ModelOptions = Field(
        {}, description="create_model options: timesteps, neuron, neuron_options, mpr, mpr_k, surrogate (a name, or "
                        "{name: esg, k_min, k_max} for ESG), norm, restrict_inner, residual_alpha, in_channels, ...")


class Data(Section):
    name: Str = Field("digits", description="a name of inflor.data.list_datasets()")
    root: Optional[Str] = Field(None, description="folder of the dataset files (default $INFLOR_DATA or ./data)")
    batch_size: Int = Field(64, ge=1, description="global training batch size, as the papers state it: torchrun's N "
                                                  "processes load batch_size / N each (it must divide)")
    test_batch_size: Optional[Int] = Field(None, ge=1, description="global evaluation batch size (default: "
                                                                   "batch_size; divided among processes, rounded up)")
    workers: Int = Field(0, ge=0, description="DataLoader worker processes")
    drop_last: bool = Field(False, description="drop the last incomplete training batch")
    options: DataOptions = Field({}, description="dataset options "
                                                                         "(inflor.data.dataset_options(name))")


class Optim(Section):
    name: OptimName = Field("sgd", description="optimizer")
    lr: float = Field(0.1, gt=0, description="base learning rate")
    momentum: float = Field(0.9, ge=0, le=1, description="SGD momentum")
    nesterov: bool = Field(False, description="SGD Nesterov momentum")
    weight_decay: float = Field(1e-4, ge=0, description="L2 weight decay")
    wd_on_bn_bias: bool = Field(True, description="true: decay every parameter (IM-Loss/InfLoR code); "
                                                  "false: only conv/linear weights (MPBN, ImageNet code)")
    betas: OptimBetas = Field([0.9, 0.999], description="Adam betas")


class Sched(Section):
    name: SchedName = Field("cosine", description="per-epoch learning-rate schedule")
    epochs: Optional[Int] = Field(None, ge=1, description="cosine period in epochs (default: train.epochs)")
    warmup: Int = Field(0, ge=0, description="epochs of linear warm-up before the cosine")
    min_lr: float = Field(0.0, ge=0, description="learning rate at the end of the cosine")


class MPD(Section):
    weight: float = Field(0.0, ge=0, description="λ of MPD-Loss (RecDis: 2); 0 = off")
    terms: LossMpdTerms = Field(
        "DSM", description="which MPD terms: D degeneration, S saturation, M mismatch")
    k_d: float = Field(1.0, ge=0, description="k_ε of L_D")
    k_s: float = Field(0.25, ge=0, description="k_ε of L_S")
    k_m: float = Field(1.25, ge=0, description="k_ε of L_M")


class IM(Section):
    weight: float = Field(0.0, ge=0, description="λ of IM-Loss (IM-Loss paper: 2; official code: 0.005); 0 = off")
    form: IMForm = Field("paper", description="paper: Eq. 11; official: the released "
                                                                    "code's variant")
    drop_first_last: bool = Field(True, description="official form: drop the first and last restricted layer")


class Loss(Section):
    task: TaskLoss = Field(
        "ce_mean", description="ce_mean: CE of the T-mean logits; ce_per_step: (1/T) Σ_t CE (RecDis Alg. 1)")
    label_smoothing: float = Field(0.0, ge=0, le=1, description="label smoothing of the task loss")
    mpd: MPD = Field(default_factory=MPD)
    im: IM = Field(default_factory=IM)


class Train(Section):
    epochs: Int = Field(20, ge=1, description="number of epochs")
    seed: Int = Field(0, ge=0, description="seed of weights, data order (per epoch) and augmentation")
    deterministic: bool = Field(False, description="deterministic kernels (slower on GPU)")
    amp: bool = Field(False, description="mixed precision (CUDA: float16 + grad scaling; CPU: bfloat16)")
    amp_dtype: AmpDtype = Field("auto", description="autocast dtype")
    device: Str = Field("auto", description="auto (CUDA if present), cpu, cuda, cuda:N")
    host_allocator: HostAllocator = Field(
        "auto", description="heap: glibc keeps freed CPU memory for the next step (faster CPU steps, resident "
                            "memory stays at its peak); system: the C library's defaults; auto: heap when "
                            "training on the CPU (inflor.train.host_allocator)")
    log_every: Int = Field(50, ge=1, description="TensorBoard step-loss interval (steps)")
    eval_every: Int = Field(1, ge=1, description="test every N epochs (and always after the last)")
    save_every: Int = Field(1, ge=1, description="write checkpoints/last.pt every N epochs (and after the last)")
    activation_checkpointing: TrainActivationCheckpointing = Field(
        None, description="recompute these modules in the backward pass to save memory (long T, deep nets); "
                          "same gradients")
    bptt: Bptt = Field("full", description="full: backprop through time; online: one step at a time, memory "
                                           "constant in T (inflor.train.online)")
    grad_clip: Optional[float] = Field(None, gt=0, description="clip the gradient norm; null = off")
    max_steps_per_epoch: Optional[Int] = Field(None, ge=1, description="cut epochs short (quick checks)")
    stop_after_epochs: Optional[Int] = Field(None, ge=1, description="stop (as if killed) after this many epochs; "
                                                                     "--resume continues")
    progress: Progress = Field(
        "auto", description="auto: a bar on a terminal, one line per epoch otherwise (or when CI=true)")
    tensorboard: bool = Field(True, description="write TensorBoard events to OUT/tb")
    snapshots: TrainSnapshots = Field(
        None, description="record per-layer membrane statistics into OUT/snapshots at these epochs "
                          "(0 = before training), e.g. '0,1,last'; docs/analysis.md")
    snapshot_batches: Optional[Int] = Field(10, ge=1, description="test batches per snapshot (null: the whole "
                                                                  "test set)")
    init_from: Optional[Str] = Field(None, description="a checkpoint file, or a run directory (its "
                                                       "checkpoints/last.pt), whose model weights start this run: "
                                                       "weights only, matched by name and shape; OUT/init.json "
                                                       "holds their test evaluation before training")


class Paper(Section):
    name: Optional[Str] = Field(None, description="paper the recipe reproduces")
    table: PaperTable = Field(None, description="table number")
    row: Optional[Str] = Field(None, description="row of the table")
    reported_acc: Optional[float] = Field(None, ge=0, le=1, description="reported top-1 accuracy (fraction)")
    reported_std: Optional[float] = Field(None, ge=0, le=1, description="reported standard deviation (fraction)")
    notes: PaperNotes = Field(
        None, description="where each hyper-parameter comes from: text, or {topic: text} over network, neuron, "
                          "..., seed (config.NOTE_TOPICS); recipes merge it by topic")


class Config(Section):
    name: Optional[Str] = Field(None, description="run name; default: the recipe's file name")
    description: Optional[Str] = Field(None, description="free text")
    model: Model = Field(default_factory=Model)
    data: Data = Field(default_factory=Data)
    optim: Optim = Field(default_factory=Optim)
    sched: Sched = Field(default_factory=Sched)
    loss: Loss = Field(default_factory=Loss)
    train: Train = Field(default_factory=Train)
    paper: Paper = Field(default_factory=Paper)
    stages: Stages = Field(
        None, description="a protocol of several trainings run in order into OUT/<stage>, each a set of overrides "
                          "of this recipe, each after the first starting from the weights of the one before "
                          "(train.init_from); docs/training.md")


class ESGRange(BaseModel):
    """ESG's K range in ``model.options.surrogate: {name: esg, k_min, k_max}`` (IM-Loss Eq. 15;
    the other keys are the surrogate's and checked by it)."""
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    k_min: float = Field(1.0, gt=0)
    k_max: float = Field(10.0, gt=0)
