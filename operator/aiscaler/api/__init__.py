"""The two custom resources, InferenceService and TrainingJob: pydantic models that are the
single source of truth of the API (crds/*.yaml are generated from them by `aiscaler crds`).

Parse a resource with `InferenceService.model_validate(body)`; on a `pydantic.ValidationError`,
`field_errors(error)` gives one `path.to.field: message` line per problem.
"""

from aiscaler.api.base import (
    API_VERSION,
    GROUP,
    VERSION,
    Condition,
    LastDecision,
    ObjectMeta,
    ScaleTargetRef,
    field_errors,
)
from aiscaler.api.inference import (
    InferenceService,
    InferenceServiceSpec,
    InferenceServiceStatus,
)
from aiscaler.api.training import TrainingJob, TrainingJobSpec, TrainingJobStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
    "LastDecision",
    "ObjectMeta",
    "ScaleTargetRef",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
    "field_errors",
]
