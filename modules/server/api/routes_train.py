"""/sdapi/v1/create/{embedding,hypernetwork} and /sdapi/v1/train/{embedding,hypernetwork}: A1111's training API.

Requests carry A1111's argument names; answers are A1111's ``{"info": "..."}`` texts. Unlike A1111, whose
answer to a bad argument is a 200 with "... error: ..." in ``info``, a bad or unknown field is a 422 naming it
(the client got something wrong); a training that ran and was interrupted is a 200 as in A1111. Training
blocks the request until the run ends; ``/sdapi/v1/progress`` shows it and ``/sdapi/v1/interrupt`` ends it
(the file is saved).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from modules.training import create
from modules.training.trainer import TrainParams

if TYPE_CHECKING:
    from modules.engine.engine import Engine

Number = Union[str, float, int]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateEmbeddingRequest(_Strict):
    name: str
    num_vectors_per_token: int = 1
    overwrite_old: bool = False
    init_text: str = "*"


class CreateHypernetworkRequest(_Strict):
    name: str
    enable_sizes: list[Union[int, str]] = Field(default_factory=lambda: [str(s) for s in create.DEFAULT_SIZES])
    overwrite_old: bool = False
    layer_structure: Optional[Union[str, list[float]]] = None
    activation_func: Optional[str] = None
    weight_init: Optional[str] = None
    add_layer_norm: bool = False
    use_dropout: bool = False
    dropout_structure: Optional[Union[str, list[float]]] = None
    activate_output: bool = False
    last_layer_dropout: bool = False


class _TrainCommon(_Strict):
    id_task: Optional[str] = None
    learn_rate: Number = "0.005"
    batch_size: int = 1
    gradient_step: int = 1
    data_root: str = ""
    log_directory: str = "textual_inversion"
    training_width: int = 512
    training_height: int = 512
    varsize: bool = False
    steps: int = 100000
    clip_grad_mode: str = "disabled"
    clip_grad_value: Number = "0.1"
    shuffle_tags: bool = False
    tag_drop_out: float = 0.0
    latent_sampling_method: str = "once"
    use_weight: bool = False
    create_image_every: int = 500
    template_filename: str = "style_filewords.txt"
    preview_from_txt2img: bool = False
    preview_prompt: str = ""
    preview_negative_prompt: str = ""
    preview_steps: int = 20
    preview_sampler_name: str = "Euler a"
    preview_cfg_scale: float = 7.0
    preview_seed: int = -1
    preview_width: int = 512
    preview_height: int = 512


class TrainEmbeddingRequest(_TrainCommon):
    embedding_name: str
    save_embedding_every: int = 500
    save_image_with_stored_embedding: bool = True


class TrainHypernetworkRequest(_TrainCommon):
    hypernetwork_name: str
    learn_rate: Number = "0.00001"
    template_filename: str = "hypernetwork.txt"
    save_hypernetwork_every: int = 500


class InfoResponse(BaseModel):
    info: str


def train_params(payload: _TrainCommon) -> TrainParams:
    """The request as the trainer's parameters (A1111's names map one to one)."""
    data = payload.model_dump()
    if isinstance(payload, TrainEmbeddingRequest):
        kind, name, every = "embedding", data.pop("embedding_name"), data.pop("save_embedding_every")
    else:
        kind, name, every = "hypernetwork", data.pop("hypernetwork_name"), data.pop("save_hypernetwork_every")
    data["learn_rate"], data["clip_grad_value"] = str(data["learn_rate"]), str(data["clip_grad_value"])
    return TrainParams(kind=kind, name=name, save_every=every, **data)


def add_training_routes(router: APIRouter, engine: "Engine", tasks: Any | None = None) -> None:
    @router.post("/create/embedding", response_model=InfoResponse)
    def create_embedding(payload: CreateEmbeddingRequest) -> InfoResponse:
        path = create.create_embedding(engine, **payload.model_dump())
        return InfoResponse(info=f"create embedding filename: {path}")

    @router.post("/create/hypernetwork", response_model=InfoResponse)
    def create_hypernetwork(payload: CreateHypernetworkRequest) -> InfoResponse:
        path = create.create_hypernetwork(engine, **payload.model_dump())
        return InfoResponse(info=f"create hypernetwork filename: {path}")

    def _train(payload: _TrainCommon, label: str) -> InfoResponse:
        params = train_params(payload)
        if params.id_task is None:
            from modules.server.api import convert

            params.id_task = convert.create_task_id(f"train_{params.kind}")
        if tasks is not None:
            tasks.add(params.id_task)
        try:
            result = engine.train(params)
        finally:
            if tasks is not None:
                tasks.finish(params.id_task)
        return InfoResponse(info=f"train {label} complete: filename: {result.filename} error: None")

    @router.post("/train/embedding", response_model=InfoResponse)
    def train_embedding(payload: TrainEmbeddingRequest) -> InfoResponse:
        return _train(payload, "embedding")

    @router.post("/train/hypernetwork", response_model=InfoResponse)
    def train_hypernetwork(payload: TrainHypernetworkRequest) -> InfoResponse:
        return _train(payload, "hypernetwork")
