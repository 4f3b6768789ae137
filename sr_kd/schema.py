"""The schema of everything sr_kd adds to a BasicSR option file: the ``distill`` section, each term of
``train.distill_opts`` (one model per registered distillation loss, made from its constructor), the teacher
(``network_t``, ``path.*_t``), ``train.nonfinite*``, ``logger.save_safetensors``, ``val.keep_best`` and the
datasets sr_kd registers. BasicSR's own keys pass through as BasicSR reads them.

Checked first by the start-up check: an unknown key is refused with the nearest known ones (a misspelt
``techer:`` once ran the teacher online, silently), and types and ranges are checked strictly ('2' is not 2).
The same models give the JSON schema editors use (``docs/options.schema.json``) and ``docs/options.md``.

Built with pydantic: its JSON Schema export, discriminated unions (a term's options follow its ``type``)
and located errors do this job; msgspec validates faster, but an option file is read once per run.
"""
import inspect
import re
from typing import Annotated, Any, ClassVar, Dict, List, Literal, Optional, Tuple, Type, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, create_model, model_validator

from sr_kd.errors import SRKDError, close_matches
from sr_kd.rules import DEFAULT_MAX_SKIP_SHARE, NONFINITE_MODES

NEAR_MISS = 0.8  # closer to a known key than this: a typo, not a key of someone's own
Number = Union[int, float]
Pair = Annotated[List[str], Field(min_length=2, max_length=2)]
FadePair = Annotated[List[Number], Field(min_length=2, max_length=2)]
FADE_TEXT = ('[start, end]: full weight until start, linearly to 0 at end; two integers are iterations, two '
             'numbers in [0, 1] with a decimal point fractions of train.total_iter; or {fraction: [start, end], '
             'at_most: [start, end]}: fractions, each at most that many iterations')


class Closed(BaseModel):
    """A section whose every key is known: anything else is a typo, refused with the nearest known keys."""
    model_config = ConfigDict(strict=True, extra='forbid')

    @model_validator(mode='before')
    @classmethod
    def _known_keys(cls, data):
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    raise ValueError(f'{key} is not an option{close_matches(key, list(cls.model_fields))}')
        return data


class CappedFade(Closed):
    """A fade window as fractions of the budget, each end at most a number of iterations."""
    fraction: FadePair = Field(description='[start, end] as fractions of train.total_iter')
    at_most: FadePair = Field(description='[start, end] caps in iterations')


Fade = Union[FadePair, CappedFade]


class Open(BaseModel):
    """A section shared with BasicSR: sr_kd's keys are checked, BasicSR's pass through. Where BasicSR's own
    keys of the section are listed (``basicsr_keys``), a key that is neither but nearly one of them is a typo
    (``save_imgs:`` trained to the first validation, then failed on the missing ``save_img``); other keys
    pass, for BasicSR's forks and your own models."""
    model_config = ConfigDict(strict=True, extra='allow')
    basicsr_keys: ClassVar[Tuple[str, ...]] = ()

    @model_validator(mode='before')
    @classmethod
    def _near_misses(cls, data):
        if isinstance(data, dict) and cls.basicsr_keys:
            known = [*cls.model_fields, *cls.basicsr_keys]
            for key in data:
                hint = '' if key in known else close_matches(key, known, cutoff=NEAR_MISS)
                if hint:
                    raise ValueError(f'{key} is not an option{hint}')
        return data


# ----- the distill section ----------------------------------------------------------------------------
def _literal(values):
    return Literal[tuple(values)]


def distill_section() -> Type[BaseModel]:
    from sr_kd.distill.teacher import TEACHER_MODES, TEACHER_PRECISIONS

    class Distill(Closed):
        """How the student is joined to its teacher (SRKDModel)."""
        pairs: Optional[Union[Literal['auto'], List[Pair]]] = Field(
            None, description='[[student_module, teacher_module], ...] whose features the terms compare, or auto '
                              '(N pairs at matching depth, chosen when training starts)')
        num_pairs: Annotated[int, Field(ge=1)] = Field(3, description='how many pairs pairs: auto chooses')
        teacher: _literal(TEACHER_MODES) = Field(
            'online', description='online runs the teacher on every batch; offline reads its outputs from a cache '
                                  'built once (about a student step per step)')
        teacher_precision: _literal(TEACHER_PRECISIONS) = Field(
            'auto', description='the teacher forward in bf16 where the hardware runs it natively (auto), or as set')
        teacher_cache: Optional[str] = Field(
            None, description='folder of the offline cache (default: teacher_cache/ beside experiments/)')
        fade: Optional[Fade] = Field(None, description='every term: ' + FADE_TEXT)
    return Distill


# ----- the terms: one model per registered distillation loss, from its constructor ----------------------
def _arg_docs(cls):
    """{argument: first sentence} from the 'Args:' sections of a class's docstring and its bases' (Google
    style): a base documents the arguments its subclasses share."""
    found = {}
    for klass in reversed(cls.__mro__):
        found.update(_own_arg_docs(klass))
    return found


def _own_arg_docs(cls):
    doc = cls.__dict__.get('__doc__') or ''
    doc = inspect.cleandoc(doc)
    found, current = {}, None
    in_args = False
    for line in doc.splitlines():
        if line.strip() == 'Args:':
            in_args = True
            continue
        if in_args:
            m = re.match(r'^\s{4}(\w+):\s*(.*)$', line)
            if m:
                current = m.group(1)
                found[current] = m.group(2)
            elif line.startswith('        ') and current:
                found[current] += ' ' + line.strip()
            elif line.strip():
                in_args = False
    return {k: v.split('. ')[0].rstrip('.') for k, v in found.items()}


def _annotation(param):
    """The declared type, or one read from the default: numbers take int or float, None takes anything."""
    if param.annotation is not inspect.Parameter.empty:
        return param.annotation
    default = param.default
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return Number
    if isinstance(default, str):
        return str
    if isinstance(default, (list, tuple)):
        return List[Any]
    if isinstance(default, dict):
        return Dict[str, Any]
    return Any


def term_example(cls: type) -> Optional[Tuple[str, Any]]:
    """The YAML example of a loss's docstring (its 'Example' section: one ``- {type: ..., ...}`` item of
    train.distill_opts) as (text, dict), or None when it has none."""
    import yaml
    doc = inspect.cleandoc(cls.__dict__.get('__doc__') or '')
    found = re.search(r'^Example[^\n]*::\s*\n\s*- (\{.*\})\s*$', doc, re.M)
    if not found:
        return None
    return found.group(1), yaml.safe_load(found.group(1))


def term_model(type_name: str, cls: type) -> Type[BaseModel]:
    """The pydantic model of one distillation loss's options."""
    docs = _arg_docs(cls)
    fields = {'type': (Literal[type_name], Field(description='the loss')),
              'name': (Optional[str], Field(None, description='its log name l_<name> (default: the type without '
                                                               'Loss, lower case)')),
              'fade': (Optional[Union[Fade, Literal[False]]],
                       Field(None, description="this term's own schedule, " + FADE_TEXT + '; false: full weight to '
                             'the end'))}
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        if isinstance(default, tuple):
            default = list(default)
        fields[param.name] = (_annotation(param), Field(default, description=docs.get(param.name, '')))
    summary = (inspect.getdoc(cls) or type_name).split('\n\n')[0].replace('\n', ' ')
    return create_model(type_name, __base__=Closed, __doc__=summary, **fields)


def distill_losses() -> Dict[str, type]:
    """{type name: class} of every registered distillation loss (a DistillLoss), sorted by name."""
    from basicsr.utils.registry import LOSS_REGISTRY

    from sr_kd import losses  # noqa: F401 - registers them (no repair of basicsr needed to list them)

    from sr_kd.losses.base import DistillLoss
    return {name: cls for name, cls in sorted(LOSS_REGISTRY)
            if inspect.isclass(cls) and issubclass(cls, DistillLoss)}


def term_union() -> Any:
    models = [term_model(name, cls) for name, cls in distill_losses().items()]
    return Annotated[Union[tuple(models)], Field(discriminator='type')]


# ----- the datasets sr_kd registers ---------------------------------------------------------------------
class _Loader(Closed):
    """Keys BasicSR's data loader and option parser read from any dataset."""
    name: str = Field(description='the name in logs and validation tables')
    phase: Optional[str] = Field(None, description='set by BasicSR from the section name')
    scale: Optional[int] = Field(None, description='set by BasicSR from the top-level scale')
    gt_size: Optional[int] = Field(None, description='HR crop size for training (a multiple of scale)')
    use_hflip: bool = Field(True, description='random horizontal flips in training')
    use_rot: bool = Field(True, description='random 90-degree rotations and vertical flips in training')
    batch_size_per_gpu: Optional[int] = Field(None, description='batch size (per GPU or process)')
    num_worker_per_gpu: Optional[int] = Field(None, description='data loader workers (per GPU or process)')
    dataset_enlarge_ratio: Optional[int] = Field(None, description='each epoch walks the images this many times')
    prefetch_mode: Optional[Literal['cpu', 'cuda']] = Field(None, description="BasicSR's prefetcher")
    pin_memory: Optional[bool] = Field(None, description='pinned host memory for the loader')
    persistent_workers: Optional[bool] = Field(None, description='keep loader workers between epochs')
    use_shuffle: Optional[bool] = Field(None, description='shuffle in training (default on)')
    io_backend: Optional[Dict[str, Any]] = Field(None, description="BasicSR's file reader ({type: disk})")
    images: Optional[List[str]] = Field(None, description='only these image names (without extension)')
    exclude: Optional[List[str]] = Field(None, description='leave these image names out (a held-out split)')
    corrupt_images: Literal['skip', 'error'] = Field('skip', description='an unreadable image: skip it or stop')
    small_images: Literal['skip', 'error'] = Field('skip', description='an image smaller than gt_size: skip or stop')
    cache: bool = Field(True, description='keep decoded images in memory')


class HROnlyDataset(_Loader):
    """HR images only; the LR is made on the fly with MATLAB's bicubic (the SR benchmarks' degradation)."""
    type: Literal['HROnlyDataset']
    dataroot_gt: str = Field(description="the HR images' folder (recursive), or skimage for the bundled photos")
    against: Literal['HR', 'teacher'] = Field('HR', description="validation: measure against the HR or the "
                                                                 "teacher's output")


class PlainImageDataset(_Loader):
    """Images without ground truth: trained on the teacher's output (distillation without HR)."""
    type: Literal['PlainImageDataset']
    dataroot_lq: str = Field(description="the images' folder (recursive): the student's and teacher's inputs")


class OtherDataset(Open):
    """Any other registered dataset (BasicSR's): its keys are its own."""
    type: str


def _dataset_kind(data):
    kind = data.get('type') if isinstance(data, dict) else getattr(data, 'type', None)
    return kind if kind in ('HROnlyDataset', 'PlainImageDataset') else 'other'


Dataset = Annotated[Union[Annotated[HROnlyDataset, Tag('HROnlyDataset')],
                          Annotated[PlainImageDataset, Tag('PlainImageDataset')],
                          Annotated[OtherDataset, Tag('other')]], Discriminator(_dataset_kind)]


# ----- the option file ------------------------------------------------------------------------------------
class NetworkT(Open):
    """The teacher's architecture: a registered arch and its arguments, or auto (read from the weights file)."""
    type: str = Field(description='a registered architecture, or auto: spandrel finds it in the weights file')


class Path(Open):
    pretrain_network_t: Optional[str] = Field(None, description="the teacher's weights file (.pth, .safetensors)")
    param_key_t: Optional[str] = Field('params', description='the key of the weights in that file (~ for a plain '
                                                             'state dict)')
    strict_load_t: bool = Field(True, description='every weight must fit network_t')


class Logger(Open):
    basicsr_keys = ('print_freq', 'save_checkpoint_freq', 'use_tb_logger', 'wandb')
    save_safetensors: bool = Field(False, description='also write each saved student as .safetensors')


class Metric(Open):
    basicsr_keys = ('type', 'crop_border', 'test_y_channel', 'better', 'input_order')


class Val(Open):
    basicsr_keys = ('val_freq', 'save_img', 'suffix', 'pbar')
    metrics: Optional[Dict[str, Metric]] = None
    keep_best: Optional[str] = Field(None, description='a metric of val.metrics: keep the best student as '
                                                        'net_g_best.pth')


def option_file_model() -> Type[BaseModel]:
    """The model of a whole option file (sr_kd's keys; BasicSR's pass through)."""
    terms = term_union()

    class Train(Open):
        distill_opts: Optional[List[terms]] = Field(None, description='the distillation terms, each with its type')
        nonfinite: _literal(NONFINITE_MODES) = Field('stop', description='a NaN/inf loss stops the run, or skips the step')
        nonfinite_max_share: Annotated[float, Field(ge=0, le=1)] = Field(
            DEFAULT_MAX_SKIP_SHARE, description='skip: stop once more than this share of the steps were skipped')

    class OptionFile(Open):
        """A BasicSR option file as sr_kd reads it."""
        name: str = Field(description='the experiment name: experiments/<name>')
        model_type: str = Field(description='SRKDModel for distillation; any BasicSR model')
        scale: Optional[Annotated[int, Field(ge=1)]] = Field(None, description='the upscaling factor')
        network_t: Optional[NetworkT] = None
        distill: Optional[distill_section()] = None
        datasets: Dict[str, Dataset] = Field(description='train and val_* datasets')
        path: Optional[Path] = None
        train: Optional[Train] = None
        logger: Optional[Logger] = None
        val: Optional[Val] = None

    return OptionFile


# BasicSR's top-level keys (basicsr/utils/options.py and its models): a near miss of one of these is a typo
TOP_LEVEL = ('name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'path', 'train', 'val', 'logger',
             'dist_params', 'find_unused_parameters', 'distill', 'is_train', 'dist', 'rank', 'world_size',
             'auto_resume', 'root_path', 'use_static_graph')


def _is_tag(part):
    """A discriminated union's tag in an error location (a term's or dataset's type), not a key."""
    return isinstance(part, str) and (part[:1].isupper() or part == 'other')


def _is_member(part):
    """A plain union's member type in an error location ('int', "literal['auto']", 'list[...]')."""
    return isinstance(part, str) and ('[' in part or part in ('int', 'float', 'str', 'bool'))


def _is_key(part):
    return not (_is_tag(part) or _is_member(part))


def _value_at(opt, keys):
    node = opt
    for key in keys:
        node = node[key]
    return node


def _where(keys):
    return ''.join(f'[{k}]' if isinstance(k, int) else f'.{k}' for k in keys).lstrip('.')


def validate(opt: dict) -> None:
    """SRKDError with one line for the first key the schema refuses."""
    for key in opt:
        if key not in TOP_LEVEL and not str(key).startswith('network_'):
            hint = close_matches(key, TOP_LEVEL)
            if hint:
                raise SRKDError(f'{key} is not an option{hint}')
    try:
        option_file_model().model_validate(opt)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        first = errors[0]
        keys = [p for p in first['loc'] if _is_key(p)]
        where = _where(keys)
        if first['type'] == 'union_tag_invalid':
            tag = first.get('ctx', {}).get('tag')
            raise SRKDError(f'{where}.type: {tag!r} is not a distillation loss'
                            f'{close_matches(tag, list(distill_losses()))}') from None
        if first['type'] == 'value_error':  # an unknown key, from Closed
            raise SRKDError(f'{where + "." if where else ""}{first["msg"].removeprefix("Value error, ")}') from None
        if first['type'] == 'missing':
            raise SRKDError(f'{where} is missing') from None
        # a value that fits no member of a union has one error per member: say them all, from the union's key
        cut = next((i for i, p in enumerate(first['loc']) if _is_member(p)), len(first['loc']))
        keys = [p for p in first['loc'][:cut] if _is_key(p)]
        said = []
        members = [err for err in errors if err['loc'][:cut] == first['loc'][:cut]]
        # a member of another kind ('a valid list' said of a mapping) is noise beside one the value got into
        inside = [err for err in members if not (len(err['loc']) == cut + 1 and err['type'].endswith('_type'))]
        for err in inside or members:
            inner = _where([p for p in err['loc'][cut:] if _is_key(p)])
            msg = re.sub(r' or instance of \w+$', '', err['msg'].removeprefix('Value error, '))
            said.append(f'{inner + ": " if inner else ""}{msg}')
        try:
            value = repr(_value_at(opt, keys))
        except (KeyError, IndexError, TypeError):
            value = repr(first.get('input'))
        raise SRKDError(f'{_where(keys)}: {value[:80]} is not valid: {"; or ".join(dict.fromkeys(said))}') from None


def json_schema() -> dict:
    return option_file_model().model_json_schema()
