"""A task kind owns everything that differs between mteb task types; a loaded task is an
mteb task object with its data, its kind and its evaluation units.

An evaluation unit is one (hf_subset, split) pair: mteb scores each, and its task score
is their mean. A kind names the provider purpose of each text mteb encodes, the texts
mteb will ask for, its evaluator settings, how to read mteb's saved predictions back
into the per-item form its resampler scores, and the resampler itself (what one
resampled item is). The runner, the evaluator and the report ask the kind; none of
them dispatches on the task type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from embedbench.errors import UserError
from embedbench.providers.base import Purpose
from embedbench.stats import Resampler

Unit = tuple[str, str]  # (hf_subset, split)


def unit_key(unit: Unit) -> str:
    return f"{unit[0]}/{unit[1]}"


# the calibration default of a kind with no split of its own to calibrate on
NAMED_SOURCE = "none: name one (another task's split or a text file)"


class Kind:
    """One mteb task type. Subclasses set the class attributes and override what differs."""

    type: ClassVar[str] = ""  # mteb's task type: the subclass's name unless it says
    purpose: ClassVar[Purpose] = "sts"  # provider purpose of its texts
    item: ClassVar[str] = ""  # what one resampled item is (README, `list tasks`)
    calibration_default: ClassVar[str] = "its train split"
    main_scores: ClassVar[tuple[str, ...]] = ()  # main scores the resampler reproduces
    searches: ClassVar[bool] = False  # evaluated by a search model (index + search options)
    corpus_calibration: ClassVar[bool] = False  # calibrates on its searched corpus by default
    other_split_calibration: ClassVar[bool] = False  # else on its one non-evaluation split

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type = cls.__dict__.get("type", cls.__name__)

    # ---- data
    def text_columns(self, task: Any) -> list[str]:
        raise NotImplementedError

    def file_columns(self, task: Any) -> dict[str, str]:
        """Columns a local `<split>.jsonl` needs, by value kind (text, number, label)."""
        return {c: "text" for c in self.text_columns(task)}

    def split_texts(self, task: Any, ds: Any) -> list[str]:
        """Every text of one split's dataset, column by column, duplicates kept."""
        out: list[str] = []
        for col in self.text_columns(task):
            out.extend(ds[col])
        return out

    def needed_texts(self, lt: LoadedTask) -> dict[Purpose, list[str]]:
        """Every text mteb will ask to encode, by purpose (a prefetch: anything missed is
        fetched when mteb asks for it)."""
        texts: list[str] = []
        for unit in lt.units:
            texts.extend(self.split_texts(lt.task, lt.dataset(*unit)))
        return {self.purpose: list(dict.fromkeys(texts))}

    def eval_texts(self, lt: LoadedTask) -> list[str]:
        """The texts evaluated on (what calibration must never contain)."""
        return [t for texts in self.needed_texts(lt).values() for t in texts]

    def calibration_pool(self, lt: LoadedTask, split: str) -> list[str]:
        """The texts of `split` of the evaluated subsets (the default calibration source)."""
        out: list[str] = []
        for subset in lt.subsets:
            out.extend(self.split_texts(lt.task, lt.dataset(subset, split)))
        return out

    # ---- evaluation
    def check_main_score(self, task: Any) -> None:
        main = task.metadata.main_score
        if self.main_scores and main not in self.main_scores:
            raise UserError(
                f"task {task.metadata.name}: its main score '{main}' has no paired interval "
                f"here; {self.type} supports: {', '.join(self.main_scores)}"
            )

    def prepare(self, task: Any, evaluation: Any) -> None:
        """Evaluator settings, identical for the float baseline and every technique."""

    def purpose_for(self, prompt_type: Any) -> Purpose:
        """The provider purpose of an mteb encode call."""
        return self.purpose

    def gold(self, lt: LoadedTask, unit: Unit) -> Any:
        """What the resampler needs besides predictions (JSON-able), e.g. gold scores."""
        raise NotImplementedError

    def read(self, raw: Any, lt: LoadedTask, unit: Unit) -> Any:
        """mteb's saved predictions of one unit, as the per-item form `resampler` scores."""
        return raw

    def resampler(self, gold: Any) -> Resampler:
        raise NotImplementedError

    def chance(self, gold: Any) -> float | None:
        """The score of an informed guess (classification: the majority label), or None."""
        return None

    def consistent(self, point: float, score: float) -> bool:
        """Do the predictions reproduce mteb's main score (`point` vs mteb's `score`)?"""
        return abs(point - score) <= 1e-9


@dataclass
class LoadedTask:
    """An mteb task with its data loaded, its kind, and where the data came from."""

    name: str
    task: Any  # mteb.AbsTask
    kind: Kind
    source: dict[str, Any] = field(default_factory=dict)
    calibration_source: str = ""  # "" = the kind's default (see `embedbench.tasks.calibration`)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # a kind's derived state
    entry: Any = None  # the config's task entry it was loaded from (`TaskSpec`)

    @property
    def type(self) -> str:
        return self.kind.type

    @property
    def purpose(self) -> Purpose:
        return self.kind.purpose

    @property
    def subsets(self) -> list[str]:
        return list(self.task.hf_subsets)

    @property
    def splits(self) -> list[str]:
        return list(self.task.eval_splits)

    @property
    def units(self) -> list[Unit]:
        """(subset, split) in mteb's evaluation order: splits, then subsets."""
        return [(subset, split) for split in self.splits for subset in self.subsets]

    def dataset(self, subset: str, split: str) -> Any:
        ds = self.task.dataset
        if subset == "default" and subset not in ds:
            where = ds
        elif subset in ds:
            where = ds[subset]
        else:
            raise UserError(f"task {self.name}: no '{subset}' subset loaded")
        if split not in where:
            raise UserError(
                f"task {self.name}: no '{split}' split"
                + ("" if subset == "default" else f" in subset '{subset}'")
                + f"; available: {', '.join(sorted(where))}"
            )
        return where[split]

    def available_splits(self) -> set[str]:
        """Splits present in every evaluated subset."""
        ds = self.task.dataset
        sets = [set(ds if s == "default" and s not in ds else ds.get(s, {})) for s in self.subsets]
        return set.intersection(*sets) if sets else set()

    def purpose_for(self, prompt_type: Any) -> Purpose:
        return self.kind.purpose_for(prompt_type)

    def needed_texts(self) -> dict[Purpose, list[str]]:
        return self.kind.needed_texts(self)

    def eval_texts(self) -> list[str]:
        return self.kind.eval_texts(self)

    def gold(self, unit: Unit) -> Any:
        return self.kind.gold(self, unit)

    def golds(self) -> dict[str, Any]:
        return {unit_key(u): self.gold(u) for u in self.units}
