"""optax.contrib's optimizers, written here from their math: ``jol.contrib.NAME`` has
optax.contrib's name, argument names and defaults, and gives the same numbers.

One module per family; this one only re-exports.
"""

from jaxopt_lab.contrib._ademamix import (
    ScaleByAdemamixState,
    ScaleBySimplifiedAdEMAMixState,
    ademamix,
    scale_by_ademamix,
    scale_by_simplified_ademamix,
    simplified_ademamix,
)
from jaxopt_lab.contrib._adopt import adopt, scale_by_adopt
from jaxopt_lab.contrib._cocob import COCOBState, acprop, cocob, scale_by_acprop, scale_by_cocob
from jaxopt_lab.contrib._complex import SplitRealAndImaginaryState, split_real_and_imaginary
from jaxopt_lab.contrib._dadapt import DAdaptAdamWState, ProdigyState, dadapt_adamw, prodigy
from jaxopt_lab.contrib._dog import DoGState, DoWGState, dog, dowg, scale_by_dog, scale_by_dowg
from jaxopt_lab.contrib._dpsgd import (
    DifferentiallyPrivateAggregateState,
    differentially_private_aggregate,
    dpsgd,
)
from jaxopt_lab.contrib._galore import (
    GaLoreDimensionNumbers,
    GaLoreState,
    galore,
    scale_by_galore,
)
from jaxopt_lab.contrib._madgrad import MadgradState, madgrad, scale_by_madgrad
from jaxopt_lab.contrib._mechanic import MechanicState, mechanize
from jaxopt_lab.contrib._momo import MomoAdamState, MomoState, momo, momo_adam
from jaxopt_lab.contrib._muon import (
    MuonDimensionNumbers,
    MuonState,
    muon,
    orthogonalize_via_newton_schulz,
    scale_by_muon,
    scale_by_shape,
)
from jaxopt_lab.contrib._reduce_on_plateau import ReduceLROnPlateauState, reduce_on_plateau
from jaxopt_lab.contrib._sam import NormalizeState, SAMState, normalize, sam
from jaxopt_lab.contrib._schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
)
from jaxopt_lab.contrib._sophia import (
    HutchinsonState,
    SophiaState,
    hutchinson_estimator_diag_hessian,
    scale_by_sophia,
    sophia,
)

__all__ = [
    "COCOBState",
    "DAdaptAdamWState",
    "DifferentiallyPrivateAggregateState",
    "DoGState",
    "DoWGState",
    "GaLoreDimensionNumbers",
    "GaLoreState",
    "HutchinsonState",
    "MadgradState",
    "MechanicState",
    "MomoAdamState",
    "MomoState",
    "MuonDimensionNumbers",
    "MuonState",
    "NormalizeState",
    "ProdigyState",
    "ReduceLROnPlateauState",
    "SAMState",
    "ScaleByAdemamixState",
    "ScaleBySimplifiedAdEMAMixState",
    "ScheduleFreeState",
    "SophiaState",
    "SplitRealAndImaginaryState",
    "acprop",
    "adopt",
    "ademamix",
    "cocob",
    "dadapt_adamw",
    "differentially_private_aggregate",
    "dog",
    "dowg",
    "dpsgd",
    "galore",
    "hutchinson_estimator_diag_hessian",
    "madgrad",
    "mechanize",
    "momo",
    "momo_adam",
    "muon",
    "normalize",
    "orthogonalize_via_newton_schulz",
    "prodigy",
    "reduce_on_plateau",
    "sam",
    "scale_by_acprop",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_cocob",
    "scale_by_dog",
    "scale_by_dowg",
    "scale_by_galore",
    "scale_by_madgrad",
    "scale_by_muon",
    "scale_by_shape",
    "scale_by_simplified_ademamix",
    "scale_by_sophia",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "simplified_ademamix",
    "sophia",
    "split_real_and_imaginary",
]
