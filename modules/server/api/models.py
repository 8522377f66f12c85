"""Pydantic request/response models of A1111's /sdapi/v1 generation endpoints.

Field names and defaults are A1111's (spec 9.2 / 9.3): clients of any A1111 version send
them, and unknown fields are ignored rather than refused.
"""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modules.server.api.json_values import check_json_values


class _Lenient(BaseModel):
    # Types only: the values' ranges and bounds are GenerationRequest.validate's, for every door alike.
    # NaN/Infinity (which Python's JSON parser accepts) and lone surrogates are refused anywhere in a body:
    # nothing downstream can use them, and echoing them back would break the JSON answer.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _plain_json_values(cls, data: Any) -> Any:
        check_json_values(data)
        return data


class _Common(_Lenient):
    prompt: str = ""
    negative_prompt: str = ""
    styles: Optional[list[str]] = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    sampler_name: Optional[str] = None
    scheduler: Optional[str] = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: Optional[bool] = None
    tiling: Optional[bool] = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: Optional[float] = None
    denoising_strength: Optional[float] = None
    s_min_uncond: Optional[float] = None
    s_churn: Optional[float] = None
    s_tmax: Optional[float] = None
    s_tmin: Optional[float] = None
    s_noise: Optional[float] = None
    override_settings: Optional[dict[str, Any]] = None
    override_settings_restore_afterwards: bool = True
    refiner_checkpoint: Optional[str] = None
    refiner_switch_at: Optional[float] = None
    disable_extra_networks: bool = False
    firstpass_image: Optional[str] = None
    comments: Optional[dict[str, Any]] = None
    force_task_id: Optional[str] = None
    sampler_index: str = "Euler"
    script_name: Optional[str] = None
    script_args: list[Any] = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)
    infotext: Optional[str] = None


class StableDiffusionTxt2ImgProcessingAPI(_Common):
    enable_hr: bool = False
    denoising_strength: Optional[float] = 0.75
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: Optional[str] = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: Optional[str] = None
    hr_sampler_name: Optional[str] = None
    hr_scheduler: Optional[str] = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""


class StableDiffusionImg2ImgProcessingAPI(_Common):
    init_images: Optional[list[Any]] = None
    resize_mode: int = 0
    denoising_strength: Optional[float] = 0.75
    image_cfg_scale: Optional[float] = None
    mask: Optional[str] = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: Optional[int] = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: Optional[float] = None
    latent_mask: Optional[str] = None
    include_init_images: bool = Field(default=False, exclude=True)


class TextToImageResponse(BaseModel):
    images: Optional[list[str]] = Field(default=None, title="Image", description="The generated images in base64 format.")
    parameters: dict[str, Any]
    info: str


ImageToImageResponse = TextToImageResponse


# ---- extras (spec 9.5) ---------------------------------------------------------------------------

class ExtrasBaseRequest(_Lenient):
    resize_mode: int = Field(default=0, description="0: upscale by upscaling_resize; 1: upscale to upscaling_resize_w x upscaling_resize_h")
    show_extras_results: bool = True
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0
    codeformer_weight: float = 0.0
    upscaling_resize: float = 2.0
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True
    upscaler_1: Optional[str] = "None"
    upscaler_2: Optional[str] = "None"
    extras_upscaler_2_visibility: float = 0.0
    upscale_first: bool = False


class ExtrasSingleImageRequest(ExtrasBaseRequest):
    image: str = Field(default="", description="Image to work on, base64 (a data: URL prefix is allowed)")


class FileData(_Lenient):
    data: str = Field(description="Base64 representation of the file")
    name: str = Field(default="", description="File name")


class ExtrasBatchImagesRequest(ExtrasBaseRequest):
    imageList: list[FileData] = Field(description="List of images to work on, base64 each")


class ExtrasSingleImageResponse(BaseModel):
    html_info: str = Field(description="A series of HTML tags containing the process info")
    image: Optional[str] = Field(default=None, description="The generated image in base64 format")


class ExtrasBatchImagesResponse(BaseModel):
    html_info: str
    images: list[str] = Field(description="The generated images in base64 format")


# ---- png-info, progress, interrogate -------------------------------------------------------------

class PNGInfoRequest(_Lenient):
    image: str = Field(default="", description="The base64 encoded PNG image")


class PNGInfoResponse(BaseModel):
    info: str = Field(description="The generation info, as a string")
    items: dict[str, Any] = Field(description="Other information from the image")
    parameters: dict[str, Any] = Field(description="The generation info, parsed")


class ProgressResponse(BaseModel):
    progress: float
    eta_relative: float
    state: dict[str, Any]
    current_image: Optional[str] = None
    textinfo: Optional[str] = None


class InterrogateRequest(_Lenient):
    image: str = ""
    model: str = "clip"


class InterrogateResponse(BaseModel):
    caption: Optional[str] = None


# ---- listings ------------------------------------------------------------------------------------

class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, str]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: Optional[list[str]] = None
    default_rho: Optional[float] = None
    need_inner_model: Optional[bool] = None


class UpscalerItem(BaseModel):
    name: str
    model_name: Optional[str] = None
    model_path: Optional[str] = None
    model_url: Optional[str] = None
    scale: Optional[float] = None


class LatentUpscalerModeItem(BaseModel):
    name: str


class SDModelItem(BaseModel):
    title: str
    model_name: str
    hash: Optional[str] = None
    sha256: Optional[str] = None
    filename: str
    config: Optional[str] = None


class SDVaeItem(BaseModel):
    model_name: str
    filename: str


class HypernetworkItem(BaseModel):
    name: str
    path: Optional[str] = None


class FaceRestorerItem(BaseModel):
    name: str
    cmd_dir: Optional[str] = None


class RealesrganItem(BaseModel):
    name: str
    path: Optional[str] = None
    scale: Optional[float] = None


class PromptStyleItem(BaseModel):
    name: str
    prompt: Optional[str] = None
    negative_prompt: Optional[str] = None


class EmbeddingItem(BaseModel):
    step: Optional[int] = None
    sd_checkpoint: Optional[str] = None
    sd_checkpoint_name: Optional[str] = None
    shape: int
    vectors: int


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, EmbeddingItem]
    skipped: dict[str, EmbeddingItem]


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any]


class MemoryResponse(BaseModel):
    ram: dict[str, Any] = Field(description="System memory stats")
    cuda: dict[str, Any] = Field(description="nVidia CUDA memory stats")


class ScriptsList(BaseModel):
    txt2img: list[str] = Field(default_factory=list)
    img2img: list[str] = Field(default_factory=list)


class ScriptArg(BaseModel):
    label: Optional[str] = None
    value: Optional[Any] = None
    minimum: Optional[Any] = None
    maximum: Optional[Any] = None
    step: Optional[Any] = None
    choices: Optional[list[str]] = None


class ScriptInfo(BaseModel):
    name: Optional[str] = None
    is_alwayson: Optional[bool] = None
    is_img2img: Optional[bool] = None
    args: list[ScriptArg]


class ExtensionItem(BaseModel):
    name: str
    remote: str
    branch: str
    commit_hash: str
    version: str
    commit_date: int
    enabled: bool


# ---- UI support routes (/internal) -----------------------------------------------------------------

class InternalProgressRequest(_Lenient):
    id_task: Optional[str] = Field(default=None, description="id of the task to get progress for")
    id_live_preview: int = Field(default=-1, description="id of last received live preview image")
    live_preview: bool = Field(default=True, description="whether to include the live preview image")


class InternalProgressResponse(BaseModel):
    active: bool
    queued: bool
    completed: bool
    progress: Optional[float] = None
    eta: Optional[float] = None
    live_preview: Optional[str] = Field(default=None, description="data: URI of the current live preview")
    id_live_preview: Optional[int] = None
    textinfo: Optional[str] = None
    # Not in A1111's response: the page's progress bar shows "Step 12/20, image 1/4".
    sampling_step: Optional[int] = None
    sampling_steps: Optional[int] = None
    job_no: Optional[int] = None
    job_count: Optional[int] = None


class PendingTasksResponse(BaseModel):
    size: int
    tasks: list[str]
